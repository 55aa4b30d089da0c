from stenostack.cli import main

raise SystemExit(main())

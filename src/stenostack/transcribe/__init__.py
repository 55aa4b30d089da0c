"""``stenostack transcribe`` and ``stenostack models``: the command line's own client.

Files in, subtitles out, either on the bundled models in this process (``local``) or
through a running engine or router (``remote``). Like ``cli.py`` this package is a
top-level consumer: it may import ``api``, ``serving``, ``engine``, ``models`` and
``audio``, and nothing under them imports it.

``inputs``: the files to do and where their outputs go; ``outputs``: rendering with the
server's own functions and writing atomically; ``progress``: a bar on a terminal, a line per
file elsewhere; ``local`` and ``remote``: the two ways to a transcript; ``catalog``: what
``models`` lists; ``arguments``: the command line; ``command``: the run, its exit status
and Ctrl-C; ``failures``: the two ways it fails.
"""

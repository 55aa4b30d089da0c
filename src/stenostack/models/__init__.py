"""Speech-to-text models behind one interface (see :mod:`stenostack.models.base`)."""

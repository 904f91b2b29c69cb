"""Entry point: `python -m corpora --source {tolstoy,libru,leipzig,text,hub} [INPUT ...] --output_dir DIR`.

    python -m corpora --source text ../shared/corpora/tolstoy/txt --output_dir data/tolstoy_txt
"""

from .builder import main

raise SystemExit(main())

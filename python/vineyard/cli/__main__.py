"""``python -m vineyard.cli <command>``."""
from . import main

if __name__ == "__main__":
    main()

"""``python3 -m vineyard [flags]``: run the bundled vineyardd in the foreground."""
import os
import sys

from vineyard import vineyardd_path


def main() -> None:
    binary = vineyardd_path()
    os.execv(binary, [binary] + sys.argv[1:])


if __name__ == "__main__":
    main()

"""``python3 -m vineyard [flags]``: run vineyardd in the foreground.

The binary is $VINEYARDD, else the one bundled with the package, else build/vineyardd of
a development tree (as for ``vineyard.connect()``).
"""
import os
import sys


def main() -> None:
    from vineyard.core.client import _find_vineyardd

    binary, tried = _find_vineyardd()
    if binary is None:
        sys.exit("python3 -m vineyard: no vineyardd found; tried:\n  " + "\n  ".join(tried))
    os.execv(binary, [binary] + sys.argv[1:])


if __name__ == "__main__":
    main()

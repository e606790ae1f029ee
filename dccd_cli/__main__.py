"""``python -m dccd_cli``: the ``dccd`` command."""

from dccd_cli import main

__all__: list[str] = []

main()

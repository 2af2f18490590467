"""``python -m marc.agent._cli``: the ``marc`` command."""

from marc.agent._cli.app import main

main()

"""The attacks, one module per kind; each module exports `ATTACKS: list[Attack]`."""

"""What one client may cost the server, enforced in front of any HTTP/2 implementation.

`limits` holds the policy (the limits, the budgets, what a refusal is and how it is logged),
`frames` reads HTTP/2 frame headers from the bytes as they pass, and `protocol` puts the two in
front of a connection: the reference and the direct transport install the same guard.
"""

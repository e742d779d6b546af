"""Tools a developer runs: code generation, the page's picture."""

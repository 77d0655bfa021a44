"""The reliability suite: is the history in the database right? (see CONTRIBUTING.md)."""

"""The one write path and who may use it: feature writes (create, replace, patch, delete, restore, revert)
with their property and geometry checks, history, rights derived from accounts and EPCI conventions,
the moderation queue and what the admin screens show of it, and the editor's feature list."""

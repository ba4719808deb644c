// GDBRemote module.

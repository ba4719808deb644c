// QEMULaunch module.

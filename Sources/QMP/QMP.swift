// QMP module.

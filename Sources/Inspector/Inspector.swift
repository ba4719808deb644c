// Inspector module.

// Dashboard module: state, keys, pure views (no ncurses).

//! Process signals: SIGTERM drains (stop accepting, let sessions finish up to the
//! deadline), SIGINT does the same, a second signal closes at once.

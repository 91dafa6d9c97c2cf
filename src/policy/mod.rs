//! Policy: decides what each statement becomes (allow, rewrite, refuse). No IO.

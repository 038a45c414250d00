//! End-to-end scenarios over real HTTP. The scenario list is shared by every edge runtime.

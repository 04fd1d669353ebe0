//! Reference matcher.

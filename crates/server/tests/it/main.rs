//! Integration tests: placeholder

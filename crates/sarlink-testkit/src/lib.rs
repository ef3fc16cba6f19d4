//! Shared test harnesses and fixtures for the sarlink workspace (not published).
#![forbid(unsafe_code)]

//! Issue 7: workspace-boundary security tests.

//! Table tests for the planners and properties of carrying plans out and undoing them.

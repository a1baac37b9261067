"""Socket.IO event handlers and REST views: authenticate, authorize, validate,
call storage, emit."""

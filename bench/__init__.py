"""`make bench`: Taskhub's fan-out measured beside Node socket.io and stock python-socketio."""

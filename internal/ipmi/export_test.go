package ipmi

// OpenSessions exposes the count of open go-ipmi sessions to the tests.
var OpenSessions = (*Pool).openSessions

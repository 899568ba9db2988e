package redfish

// Exported for the external tests.
var (
	ParseRetryAfter = parseRetryAfter
	CheckSystemPath = checkSystemPath
	Plan            = plan
)

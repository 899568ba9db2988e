package apitype

// Error is the body of every failed request: {"error": "...", "code": "..."}.
type Error struct {
	Message string `json:"error"`
	Code    string `json:"code"`
}

// Error codes, with the HTTP status each is sent with.
const (
	CodeInvalid   = "invalid"   // 400: the request is malformed or refused as given
	CodeNotFound  = "not_found" // 404: no such node, group, image, generation or rollout
	CodeConflict  = "conflict"  // 409: a stale base revision, or a step the state forbids
	CodeForbidden = "forbidden" // 403: the caller's role does not allow the route
	CodeInternal  = "internal"  // 500: anything else
)

func (e *Error) Error() string { return e.Message }

// CodeUnavailable (503) says the daemon refused an action it could not
// audit durably (the audit log's disk is full or failing); nothing was done.
const CodeUnavailable = "unavailable"

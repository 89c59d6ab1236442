package drill

// LoadError means the scratch server did not load the restored file.
type LoadError struct{ Detail string }

func (e *LoadError) Error() string {
	return "scratch server exited while loading the restored RDB; its log: " + e.Detail
}

// VerificationFailed marks a failed load as a failed drill (exit 3).
func (e *LoadError) VerificationFailed() bool { return true }

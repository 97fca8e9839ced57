package election

import "fmt"

// Role is what a node is at a given moment; see the roles table of the
// cluster design. The zero value is Candidate, the role every node starts in.
type Role int

const (
	// Candidate serves read-only clients, accepts no commits and replicates
	// from an upstream if it has one. Every node starts as a Candidate.
	Candidate Role = iota
	// Primary serves read-write clients, accepts commits and serves
	// replication.
	Primary
	// Secondary serves read-only clients and replicates from its upstream
	// (the primary, or another secondary when cascading).
	Secondary
	// Fenced is a primary whose ZooKeeper session is in doubt: it accepts no
	// commits (votes fail with a retryable error), replicates from nobody and
	// serves no replication until it is unfenced or demoted.
	Fenced
)

// String returns the name published in nodes/<name>: "candidate",
// "primary", "secondary" or "fenced".
func (r Role) String() string {
	switch r {
	case Candidate:
		return "candidate"
	case Primary:
		return "primary"
	case Secondary:
		return "secondary"
	case Fenced:
		return "fenced"
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// valid reports whether r is one of the four roles.
func (r Role) valid() bool { return r >= Candidate && r <= Fenced }

// ParseRole is the inverse of Role.String.
func ParseRole(s string) (Role, error) {
	for r := Candidate; r <= Fenced; r++ {
		if r.String() == s {
			return r, nil
		}
	}
	return Candidate, fmt.Errorf("%w: %q", ErrUnknownRole, s)
}

// MarshalText encodes the role as its name, for the JSON of nodes/<name>.
func (r Role) MarshalText() ([]byte, error) {
	if !r.valid() {
		return nil, fmt.Errorf("%w: %d", ErrUnknownRole, int(r))
	}
	return []byte(r.String()), nil
}

// UnmarshalText decodes a role name.
func (r *Role) UnmarshalText(b []byte) error {
	v, err := ParseRole(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// isPrimaryLike reports whether the role is a primary's, fenced or not:
// the roles that must demote when the primary znode is no longer theirs.
func (r Role) isPrimaryLike() bool { return r == Primary || r == Fenced }

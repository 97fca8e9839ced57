package registry

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/zrs-go/zrs/storage"
)

// Role is what a node currently is (cluster.md, "Roles").
type Role string

// The roles.
const (
	RolePrimary   Role = "primary"
	RoleSecondary Role = "secondary"
	RoleCandidate Role = "candidate"
	RoleFenced    Role = "fenced"
)

// NodeRecord is the data of nodes/<name>: what a node tells the others
// about itself.
type NodeRecord struct {
	Name        string      `json:"name"`
	ZEO         string      `json:"zeo"`         // ZEO address clients use
	Replication string      `json:"replication"` // where it serves its replication stream
	Role        Role        `json:"role"`
	Epoch       uint64      `json:"epoch"` // highest epoch it has seen
	LastTid     storage.Tid `json:"-"`     // in JSON: last_tid, 16 hex digits
	Upstream    string      `json:"upstream"`
	Priority    int         `json:"priority"`
	NoFailover  bool        `json:"no_failover"`
	Version     string      `json:"version"` // software version
	PID         int         `json:"pid"`
}

type nodeRecordJSON struct {
	nodeRecordAlias
	LastTid string `json:"last_tid"`
}

type nodeRecordAlias NodeRecord

// MarshalJSON writes the record with last_tid as 16 hex digits.
func (r NodeRecord) MarshalJSON() ([]byte, error) {
	return json.Marshal(nodeRecordJSON{nodeRecordAlias(r), r.LastTid.String()})
}

// UnmarshalJSON reads what MarshalJSON writes; a missing last_tid is 0.
func (r *NodeRecord) UnmarshalJSON(b []byte) error {
	var j nodeRecordJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*r = NodeRecord(j.nodeRecordAlias)
	if j.LastTid != "" {
		tid, err := storage.ParseTid(j.LastTid)
		if err != nil {
			return fmt.Errorf("last_tid %q: %v", j.LastTid, err)
		}
		r.LastTid = tid
	}
	return nil
}

// sameButTid reports whether a and b differ at most in LastTid.
func sameButTid(a, b NodeRecord) bool {
	a.LastTid = b.LastTid
	return a == b
}

// PrimaryRecord is the data of the primary znode.
type PrimaryRecord struct {
	Name        string `json:"name"`
	ZEO         string `json:"zeo"`
	Replication string `json:"replication"`
	Epoch       uint64 `json:"epoch"`
}

// SyncRecord is the data of the sync znode, written by the primary.
type SyncRecord struct {
	Epoch   uint64 `json:"epoch"`
	Primary string `json:"primary"`
	// Members are the secondaries that have acknowledged every commit
	// acknowledged to a client; empty when replication is asynchronous
	// (or degraded to it).
	Members []string `json:"members"`
}

// ProviderRecord is the data of a zc.zkzeo provider entry.
type ProviderRecord struct {
	PID int `json:"pid"`
}

// Epoch is the content of the epoch znode and the version that a
// RunForPrimary must match.
type Epoch struct {
	Value   uint64
	Version int32
}

func parseEpoch(data []byte) (uint64, error) {
	s := strings.TrimSpace(string(data))
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("registry: epoch znode holds %q, not a decimal integer", s)
	}
	return v, nil
}

func formatEpoch(v uint64) []byte { return []byte(strconv.FormatUint(v, 10)) }

// checkAdvertised checks a ZEO address to publish as a provider entry: it
// becomes a znode name, and clients connect to it, so it needs a concrete
// host and a port.
func checkAdvertised(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("registry: ZEO address %q: %v", addr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		return fmt.Errorf("registry: ZEO address %q: advertise a host clients can reach, not an unspecified one", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("registry: ZEO address %q: bad port", addr)
	}
	if err := checkName(addr); err != nil {
		return fmt.Errorf("registry: ZEO address %q: %v", addr, err)
	}
	return nil
}

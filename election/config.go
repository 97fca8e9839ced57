package election

import (
	"errors"
	"fmt"
	"time"
)

// ErrInvalidConfig is wrapped by the errors Config.Validate returns.
var ErrInvalidConfig = errors.New("election: invalid config")

// ErrUnknownRole is wrapped by the errors returned for an unknown role name.
var ErrUnknownRole = errors.New("election: unknown role")

// DefaultSettleDelay is the settle delay of the cluster design.
const DefaultSettleDelay = 500 * time.Millisecond

// Config is one node's election settings.
type Config struct {
	// SettleDelay is how long a node waits after it first sees the primary
	// znode missing before it considers running, so that peers can publish
	// their final last tid. Zero runs at once.
	SettleDelay time.Duration

	// MaxLagOnFailover bounds, in asynchronous mode, how far behind the last
	// tid this node saw from the old primary the new primary may be,
	// measured as the difference between the times the two tids encode.
	// Zero means the new primary must hold everything this node saw.
	MaxLagOnFailover time.Duration

	// Priority is published in nodes/<name>; a higher priority wins ties.
	// Ranking always uses the published value (NodeInfo.Priority) so that
	// every node ranks the same data the same way.
	Priority int

	// NoFailover keeps this node from ever running for primary. It is
	// published as well; either the setting or the published flag suffices.
	NoFailover bool
}

// Default returns the settings of the cluster design: a 500 ms settle
// delay, only the freshest node may win, priority 0, failover allowed.
func Default() Config {
	return Config{SettleDelay: DefaultSettleDelay}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	if c.SettleDelay < 0 {
		return fmt.Errorf("%w: settle_delay %v is negative", ErrInvalidConfig, c.SettleDelay)
	}
	if c.MaxLagOnFailover < 0 {
		return fmt.Errorf("%w: max_lag_on_failover %v is negative", ErrInvalidConfig, c.MaxLagOnFailover)
	}
	return nil
}

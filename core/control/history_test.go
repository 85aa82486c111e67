package control_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core/control"
	"github.com/graft-host/graft/mailbox"
)

// The records that members of a cluster wrote of their shares of one op
// are one record in the API: at the first share's place, spanning every
// share's time, with every share's actors, and the worst outcome; records
// of other ops, and a core's own, stay as they are.
func TestClusterSharesAreOneRecord(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	pause := func(actor string) mailbox.UpgradeStep {
		return mailbox.UpgradeStep{Actor: actor, Step: "pause", Duration: time.Millisecond}
	}
	share := func(id uint64, member, op string, start, end int, outcome, err string, actors ...string) mailbox.UpgradeRecord {
		r := mailbox.UpgradeRecord{ID: id, Behaviour: "kv", Kind: "upgrade", From: "1.0.0", To: "2.0.0",
			Started: at(start), Ended: at(end), Outcome: outcome, Error: err, Member: member, ClusterOp: op}
		r.Steps = append(r.Steps, mailbox.UpgradeStep{Step: "load", Duration: time.Millisecond})
		for _, a := range actors {
			r.Steps = append(r.Steps, pause(a))
		}
		return r
	}
	recs := []mailbox.UpgradeRecord{
		share(1, "m1", "m0-a", 5, 40, "completed", "", "k1", "k3"),
		share(2, "m2", "m0-b", 100, 120, "completed", "", "k2"),
		share(3, "m0", "m0-a", 0, 30, "completed", "", "k0", "k2"),
		share(4, "m2", "m0-a", 10, 50, "failed", "k4: migration failed", "k4"),
		{ID: 5, Behaviour: "kv", Kind: "rollback", From: "2.0.0", To: "1.0.0", Started: at(200), Ended: at(210), Outcome: "completed"},
	}
	out := control.NewUpgradeRecords(recs)
	require.Len(t, out, 3, "one record per op")

	op := out[0]
	assert.Equal(t, uint64(1), op.ID, "named by its first share")
	assert.Equal(t, "m0-a", op.ClusterOp)
	assert.Equal(t, at(0), op.Started, "from the earliest start")
	assert.Equal(t, at(50), op.Ended, "to the latest end")
	assert.InDelta(t, 0.050, op.DurationSeconds, 1e-9)
	assert.Equal(t, 5, op.Actors, "k0..k4: every share's actors")
	assert.Equal(t, "failed", op.Outcome, "the worst share's outcome")
	assert.Equal(t, "member m2: k4: migration failed", op.Error)
	assert.Empty(t, op.Member)
	require.Len(t, op.Members, 3)
	assert.Equal(t, []string{"m1", "m0", "m2"}, []string{op.Members[0].Member, op.Members[1].Member, op.Members[2].Member})
	assert.Equal(t, control.MemberShare{Member: "m2", ID: 4, Started: at(10), Ended: at(50), Outcome: "failed", Error: "k4: migration failed", Actors: 1}, op.Members[2])

	masked := control.NewUpgradeRecords([]mailbox.UpgradeRecord{
		share(1, "a", "x", 0, 10, "completed after a core restart", ""),
		share(2, "b", "x", 0, 20, "failed", "boom"),
	})
	require.Len(t, masked, 1)
	assert.Equal(t, "failed", masked[0].Outcome, "a completion of any form does not hide a failed share")

	alone := out[1]
	assert.Equal(t, uint64(2), alone.ID)
	assert.Len(t, alone.Members, 1, "a cluster op one member carried out")
	assert.Equal(t, "completed", alone.Outcome)

	own := out[2]
	assert.Equal(t, uint64(5), own.ID, "a single core's record is as it was")
	assert.Empty(t, own.Members)
	assert.Empty(t, own.ClusterOp)
}

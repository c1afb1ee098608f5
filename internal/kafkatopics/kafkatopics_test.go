package kafkatopics

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func client(t *testing.T, kc *kfake.Cluster, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(kc.ListenAddrs()...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// transaction produces values to partition 0 of topic in one transaction
// and ends it with commit; open leaves it running.
func transaction(t *testing.T, ctx context.Context, cl *kgo.Client, topic string, commit, open bool, values ...string) {
	t.Helper()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for _, v := range values {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if open {
		return
	}
	if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		t.Fatal(err)
	}
}

// TestReadToCommitted reads a transactional topic up to its last stable
// offset: committed records only, ending at the commit marker, with a
// later transaction still open.
func TestReadToCommitted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	const topic = "changelog"
	admin := client(t, kc)
	res, err := Create(ctx, admin, []string{topic}, Spec{Partitions: 2, Configs: map[string]string{"cleanup.policy": "compact"}})
	if err == nil {
		err = Err(res)
	}
	if err != nil {
		t.Fatal(err)
	}
	prod := client(t, kc, kgo.TransactionalID("writer"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	transaction(t, ctx, prod, topic, true, false, "a1", "a2")
	transaction(t, ctx, prod, topic, false, false, "aborted")
	transaction(t, ctx, prod, topic, true, false, "b1")
	transaction(t, ctx, prod, topic, false, true, "open")

	all, err := Offsets(ctx, admin, topic)
	if err != nil {
		t.Fatal(err)
	}
	spans, err := CommittedOffsets(ctx, admin, topic)
	if err != nil {
		t.Fatal(err)
	}
	if spans[0].End >= all[0].End || spans[1] != (Span{}) {
		t.Fatalf("committed offsets %v, want partition 0 to end before the open transaction (high watermark %d) and partition 1 empty", spans, all[0].End)
	}

	read := func(ends map[int32]int64, idle time.Duration) (values []string, left map[int32]int64) {
		cl := client(t, kc, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords(), kgo.FetchMaxWait(50*time.Millisecond))
		left, err := ReadTo(ctx, cl, ends, idle, func(r *kgo.Record) {
			if !r.Attrs.IsControl() {
				values = append(values, string(r.Value))
			}
		}, func(topic string, p int32, err error) { t.Errorf("fetching %s/%d: %v", topic, p, err) })
		if err != nil {
			t.Fatal(err)
		}
		return values, left
	}
	// A long idle window: ReadTo must end on the end offset, not on it.
	values, left := read(map[int32]int64{0: spans[0].End}, time.Minute)
	if want := []string{"a1", "a2", "b1"}; !slices.Equal(values, want) || len(left) != 0 {
		t.Errorf("read %q, left %v; want %q and nothing left", values, left, want)
	}
	// An end no record reaches (compacted away): ReadTo gives up after idle.
	values, left = read(map[int32]int64{0: all[0].End + 10}, 300*time.Millisecond)
	if len(values) != 3 || left[0] != all[0].End+10 {
		t.Errorf("read %q, left %v; want the three committed values and partition 0 left", values, left)
	}
}

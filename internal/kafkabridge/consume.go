package kafkabridge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferry-iot/ferry/amqp"
	"github.com/ferry-iot/ferry/amqp/encoding"
	"github.com/ferry-iot/ferry/internal/northbound/amqpapi"
)

// Bounds of a consumer's Kafka client: what one fetch may bring in,
// whatever the link's credit.
const (
	fetchMaxBytes = 1 << 20
	startTimeout  = 10 * time.Second
	commitTimeout = 5 * time.Second
	fetchBackoff  = time.Second
)

// consumer serves one link the application receives on. Its goroutines
// are run (the pump: fetch while there is credit, send) and commitLoop;
// both end with the link or the bridge.
type consumer struct {
	b         *Bridge
	snd       *amqp.Sender
	topic     string
	topicID   [16]byte // for commits of Kafka 4's OffsetCommit v10, by id
	group     string
	partition int32 // -1: the group assigns partitions
	offset    int64 // -1: the group's committed offset
	// convert makes the message of a record; nil skips the record as
	// done.
	convert func(*kgo.Record) *amqp.Message
	// latest starts a group without committed offsets at the end of the
	// topic instead of its beginning.
	latest bool
	cl     *kgo.Client

	ctx    context.Context
	cancel context.CancelFunc
	wake   chan struct{} // cap 1: credit, room or a retry for the pump
	commit chan struct{} // cap 1: a commit point advanced

	mu        sync.Mutex
	parts     map[int32]*tracker
	pending   []*kgo.Record // fetched, not sent yet: at most one poll's worth
	retry     []*kgo.Record // released or modified: sent again first
	unsettled int
	wakePoll  context.CancelFunc // ends the pump's poll for a retry
}

func (b *Bridge) handleConsume(req *amqp.LinkRequest, app *amqpapi.Application, conv converter) error {
	topic, group, err := consumeAddress(req.Address)
	if err != nil {
		return err
	}
	if err := b.authorize(app, topic); err != nil {
		return err
	}
	partition, offset, err := filters(req.Attach.Source.Filter)
	if err != nil {
		return err
	}
	if err := b.acquire(true); err != nil {
		return err
	}
	b.startConsumer(&consumer{snd: req.Sender, topic: topic, group: group, partition: partition, offset: offset, convert: conv.message})
	return nil
}

// ConsumeLatest serves snd from topic as a member of the Kafka consumer
// group, as the bridge's consumer links are served, except where a group
// without committed offsets starts: at the end of the topic, committed
// as soon as the group assigns a partition, so that the group resumes
// from there even if its first link ends before any record. convert
// makes the message of a record; nil skips the record (done, committed).
// The link counts as one of the bridge's consumers; a missing topic ends
// it after its attach.
func (b *Bridge) ConsumeLatest(snd *amqp.Sender, topic, group string, convert func(*kgo.Record) *amqp.Message) error {
	if err := b.acquire(true); err != nil {
		return err
	}
	b.startConsumer(&consumer{snd: snd, topic: topic, group: group, partition: -1, offset: -1, convert: convert, latest: true})
	return nil
}

// startConsumer runs c, which acquire counted.
func (b *Bridge) startConsumer(c *consumer) {
	c.b = b
	c.wake, c.commit, c.parts = make(chan struct{}, 1), make(chan struct{}, 1), map[int32]*tracker{}
	c.ctx, c.cancel = context.WithCancel(b.ctx)
	// After the outcomes of everything sent: the final commit sees them.
	c.snd.OnDetach(c.cancel)
	c.snd.OnReady(c.signal)
	go c.run()
}

// filters reads the partition and offset filters: -1 for absent ones.
func filters(f map[amqp.Symbol]any) (partition int32, offset int64, err error) {
	partition, offset = -1, -1
	pv, hasP := filterValue(f, FilterPartition)
	ov, hasO := filterValue(f, FilterOffset)
	if hasP {
		n, ok := amqp.Integer(pv)
		if !ok || n < 0 || n > 1<<31-1 {
			return 0, 0, &amqp.Error{Condition: CondWrongPartitionFilter, Description: fmt.Sprintf("%s must be a partition number (int), not %v", FilterPartition, pv)}
		}
		partition = int32(n)
	}
	if hasO {
		n, ok := amqp.Integer(ov)
		if !ok || n < 0 {
			return 0, 0, &amqp.Error{Condition: CondWrongOffsetFilter, Description: fmt.Sprintf("%s must be an offset (long, not negative), not %v", FilterOffset, ov)}
		}
		if !hasP {
			return 0, 0, &amqp.Error{Condition: CondNoPartitionFilter, Description: fmt.Sprintf("%s needs %s", FilterOffset, FilterPartition)}
		}
		offset = n
	}
	return partition, offset, nil
}

// filterValue takes a filter as Strimzi's clients send it (the bare
// value) or as a described value (go-amqp's, the spec's filter type).
func filterValue(f map[amqp.Symbol]any, name amqp.Symbol) (any, bool) {
	v, ok := f[name]
	if d, isD := v.(encoding.Described); isD {
		v = d.Value
	}
	return v, ok
}

func (c *consumer) run() {
	defer c.b.release(true)
	defer c.cancel()
	if err := c.start(); err != nil {
		c.b.log.Debug("kafka bridge: consumer link refused", "topic", c.topic, "group", c.group, "err", err)
		c.detach(asError(err))
		return
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.commitLoop()
	}()
	c.pump()
	c.cancel()
	wg.Wait()
	// The group's revocation at close commits anything settled since.
	c.cl.CloseAllowingRebalance()
	if c.b.ctx.Err() != nil {
		c.detach(&amqp.Error{Condition: amqp.CondDetachForced, Description: "the Kafka bridge is closing"})
	}
}

func (c *consumer) detach(e *amqp.Error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = c.snd.CloseWithError(ctx, e)
}

// start checks the topic and partition and makes the client: a group
// member, or a direct consumer of one partition from the filter's offset
// or the group's committed one.
func (c *consumer) start() error {
	ctx, cancel := context.WithTimeout(c.ctx, startTimeout)
	defer cancel()
	n, err := c.partitions(ctx)
	if err != nil {
		return err
	}
	reset := kgo.NewOffset().AtStart()
	if c.latest {
		reset = kgo.NewOffset().AtEnd()
	}
	opts := append(slices.Clone(c.b.opts.Client),
		kgo.FetchMaxBytes(fetchMaxBytes), kgo.FetchMaxPartitionBytes(fetchMaxBytes),
		kgo.ConsumeResetOffset(reset))
	if c.partition < 0 {
		opts = append(opts, kgo.ConsumerGroup(c.group), kgo.ConsumeTopics(c.topic),
			kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(),
			kgo.OnPartitionsRevoked(c.revoked), kgo.OnPartitionsLost(c.lost))
		if c.latest {
			opts = append(opts, kgo.OnPartitionsAssigned(c.assigned))
		}
	} else {
		if c.partition >= n {
			return &amqp.Error{Condition: CondPartitionNotExists, Description: fmt.Sprintf("Kafka topic %s has %d partitions, no %d", c.topic, n, c.partition)}
		}
		at := kgo.NewOffset().At(c.offset)
		if c.offset < 0 {
			committed, err := c.committed(ctx, c.b.prod, []int32{c.partition})
			if err != nil {
				return err
			}
			at = kgo.NewOffset().AtStart()
			if off, ok := committed[c.partition]; ok {
				at = kgo.NewOffset().At(off)
			}
		}
		opts = append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{c.topic: {c.partition: at}}))
	}
	c.cl, err = kgo.NewClient(opts...)
	return err
}

// partitions is the topic's partition count, from the bridge's producer
// client (the consumer's does not exist yet).
func (c *consumer) partitions(ctx context.Context) (int32, error) {
	req := kmsg.NewPtrMetadataRequest()
	t := kmsg.NewMetadataRequestTopic()
	t.Topic = kmsg.StringPtr(c.topic)
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, c.b.prod)
	if err != nil {
		return 0, &amqp.Error{Condition: amqp.CondInternalError, Description: fmt.Sprintf("Kafka metadata of %s: %v", c.topic, err)}
	}
	if len(resp.Topics) != 1 {
		return 0, &amqp.Error{Condition: amqp.CondInternalError, Description: fmt.Sprintf("Kafka metadata of %s: %d topics in the answer", c.topic, len(resp.Topics))}
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			return 0, &amqp.Error{Condition: amqp.CondNotFound, Description: describe(c.topic, err)}
		}
		return 0, &amqp.Error{Condition: amqp.CondInternalError, Description: describe(c.topic, err)}
	}
	c.topicID = resp.Topics[0].TopicID
	return int32(len(resp.Topics[0].Partitions)), nil
}

// committed is the group's committed offsets of the topic's partitions
// ps; those without one are missing.
func (c *consumer) committed(ctx context.Context, cl *kgo.Client, ps []int32) (map[int32]int64, error) {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = c.group
	t := kmsg.NewOffsetFetchRequestTopic()
	t.Topic = c.topic
	t.Partitions = ps
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		return nil, &amqp.Error{Condition: amqp.CondInternalError, Description: fmt.Sprintf("the committed offsets of group %s: %v", c.group, err)}
	}
	topics := resp.Topics
	if len(resp.Groups) > 0 {
		if err := kerr.ErrorForCode(resp.Groups[0].ErrorCode); err != nil {
			return nil, &amqp.Error{Condition: amqp.CondInternalError, Description: fmt.Sprintf("the committed offsets of group %s: %v", c.group, err)}
		}
		for _, gt := range resp.Groups[0].Topics {
			t := kmsg.NewOffsetFetchResponseTopic()
			t.Topic = gt.Topic
			for _, gp := range gt.Partitions {
				p := kmsg.NewOffsetFetchResponseTopicPartition()
				p.Partition, p.Offset, p.ErrorCode = gp.Partition, gp.Offset, gp.ErrorCode
				t.Partitions = append(t.Partitions, p)
			}
			topics = append(topics, t)
		}
	}
	offsets := map[int32]int64{}
	for _, t := range topics {
		for _, p := range t.Partitions {
			if t.Topic == c.topic && slices.Contains(ps, p.Partition) && p.ErrorCode == 0 && p.Offset >= 0 {
				offsets[p.Partition] = p.Offset
			}
		}
	}
	return offsets, nil
}

// assigned commits the end of the topic for the assigned partitions the
// group has no offsets for (a latest consumer's new group). It runs
// before the client fetches the group's offsets, so the client starts
// from what it committed. Without the commit, records produced before
// the first one the group consumes would be skipped again by every
// later member, and nobody could tell when the group starts to count.
func (c *consumer) assigned(ctx context.Context, cl *kgo.Client, added map[string][]int32) {
	ps := added[c.topic]
	if len(ps) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	committed, err := c.committed(ctx, cl, ps)
	if err != nil {
		c.b.log.Warn("kafka bridge: a new group's start not committed", "topic", c.topic, "group", c.group, "err", err)
		return
	}
	var missing []int32
	for _, p := range ps {
		if _, ok := committed[p]; !ok {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return
	}
	ends, err := c.ends(ctx, cl, missing)
	if err == nil {
		err = c.commitMember(ctx, cl, ends)
	}
	if err != nil && ctx.Err() == nil {
		c.b.log.Warn("kafka bridge: a new group's start not committed", "topic", c.topic, "group", c.group, "err", err)
	}
}

// ends lists the end offsets of the topic's partitions ps.
func (c *consumer) ends(ctx context.Context, cl *kgo.Client, ps []int32) (map[int32]int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	t := kmsg.NewListOffsetsRequestTopic()
	t.Topic = c.topic
	for _, p := range ps {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp, rp.CurrentLeaderEpoch = p, -1, -1
		t.Partitions = append(t.Partitions, rp)
	}
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	ends := map[int32]int64{}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				return nil, fmt.Errorf("partition %d: %w", rp.Partition, err)
			}
			ends[rp.Partition] = rp.Offset
		}
	}
	return ends, nil
}

// commitMember commits offsets in the client's current generation of the
// group, outside franz-go's commit path, which waits for what is running
// the callback.
func (c *consumer) commitMember(ctx context.Context, cl *kgo.Client, offsets map[int32]int64) error {
	member, generation := cl.GroupMetadata()
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.MemberID, req.Generation = c.group, member, generation
	t := kmsg.NewOffsetCommitRequestTopic()
	t.Topic, t.TopicID = c.topic, c.topicID
	for p, at := range offsets {
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch = p, at, -1
		t.Partitions = append(t.Partitions, rp)
	}
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	return commitErr(resp)
}

// signal wakes the pump: credit came (OnReady), a message was settled or
// one is to be sent again.
func (c *consumer) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// pump fetches while the link has credit and room for unsettled
// messages, and sends what it fetched. It holds at most one poll's
// records, as many as the credit allowed when it polled.
func (c *consumer) pump() {
	max := c.b.opts.MaxUnsettled
	for c.ctx.Err() == nil {
		if !c.flush() {
			c.wait(nil)
			continue
		}
		credit := int(c.snd.Credit())
		if credit == 0 {
			c.wait(c.snd.CreditAvailable())
			continue
		}
		c.mu.Lock()
		n := min(credit, max-c.unsettled)
		c.mu.Unlock()
		if n <= 0 {
			c.wait(nil)
			continue
		}
		c.poll(n)
	}
}

func (c *consumer) wait(credit <-chan struct{}) {
	select {
	case <-c.wake:
	case <-credit:
	case <-c.ctx.Done():
	}
}

// poll fetches up to n records into pending. A retry ends the poll, so
// that a released message goes out again without waiting for new ones.
func (c *consumer) poll(n int) {
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	c.mu.Lock()
	if len(c.retry) > 0 {
		c.mu.Unlock()
		return
	}
	c.wakePoll = cancel
	c.mu.Unlock()
	fs := c.cl.PollRecords(ctx, n)
	c.mu.Lock()
	c.wakePoll = nil
	failed := false
	fs.EachError(func(topic string, p int32, err error) {
		if !errors.Is(err, context.Canceled) && !errors.Is(err, kgo.ErrClientClosed) {
			failed = true
			c.b.log.Warn("kafka bridge: fetching", "topic", topic, "partition", p, "err", err)
		}
	})
	fs.EachRecord(func(r *kgo.Record) { c.pending = append(c.pending, r) })
	idle := len(c.pending) == 0
	c.mu.Unlock()
	// Revocations run after this, and drop what they take away from
	// pending.
	if c.partition < 0 {
		c.cl.AllowRebalance()
	}
	if failed && idle {
		// A lasting error (the topic deleted, say) comes back at every
		// poll: not a loop of warnings.
		t := time.NewTimer(fetchBackoff)
		defer t.Stop()
		select {
		case <-t.C:
		case <-c.ctx.Done():
		}
	}
}

// flush sends the retries, then pending, as long as the link takes
// them; false when it stopped for want of credit or room.
func (c *consumer) flush() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.retry) > 0 || len(c.pending) > 0 {
		q := &c.pending
		if len(c.retry) > 0 {
			q = &c.retry
		}
		r := (*q)[0]
		t := c.parts[r.Partition]
		if t == nil {
			t = &tracker{}
			c.parts[r.Partition] = t
		}
		m := c.convert(r)
		var ok bool
		var err error
		if m != nil {
			ok, err = c.snd.TrySend(m, nil, c.outcome(t, r))
		}
		switch {
		case m == nil:
			if q == &c.pending {
				t.sent(r.Offset)
			}
			if t.done(r.Offset) {
				c.commitSoon()
			}
		case err != nil && c.snd.Err() != nil:
			c.cancel() // the link ended; OnDetach would say so soon
			return true
		case err != nil:
			// Not sendable at all (larger than the application takes):
			// skipped as if rejected, so the commits go past it.
			c.b.log.Warn("kafka bridge: record not sent", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
			if q == &c.pending {
				t.sent(r.Offset)
			}
			t.done(r.Offset)
		case !ok:
			return false
		default:
			if q == &c.pending {
				t.sent(r.Offset)
			}
			t.out++
			c.unsettled++
		}
		(*q)[0] = nil
		*q = (*q)[1:]
	}
	c.pending, c.retry = nil, nil
	return true
}

// outcome handles the application's settlement of r: accepted and
// rejected are done, released and modified go out again; a link that
// ended first leaves r to whoever consumes next.
func (c *consumer) outcome(t *tracker, r *kgo.Record) func(error) {
	return func(err error) {
		var oe *amqp.OutcomeError
		switch {
		case err == nil:
		case errors.As(err, &oe):
			if _, rejected := oe.State.(*amqp.Rejected); !rejected {
				c.mu.Lock()
				if c.parts[r.Partition] == t {
					t.out--
					c.unsettled--
					c.retry = append(c.retry, r)
					if c.wakePoll != nil {
						c.wakePoll()
					}
				}
				c.mu.Unlock()
				c.signal()
				return
			}
		default:
			return
		}
		c.mu.Lock()
		advanced := false
		if c.parts[r.Partition] == t {
			t.out--
			c.unsettled--
			advanced = t.done(r.Offset)
		}
		c.mu.Unlock()
		c.signal()
		if advanced {
			c.commitSoon()
		}
	}
}

// commitSoon wakes commitLoop: a commit point advanced.
func (c *consumer) commitSoon() {
	select {
	case c.commit <- struct{}{}:
	default:
	}
}

// commitLoop commits as settlements advance the commit points, and once
// more when the link ends.
func (c *consumer) commitLoop() {
	for {
		select {
		case <-c.commit:
			c.commitNow(c.ctx, nil)
		case <-c.ctx.Done():
			ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
			c.commitNow(ctx, nil)
			cancel()
			return
		}
	}
}

// commitNow commits the points of the given partitions (nil: all) that
// moved since their last commit.
func (c *consumer) commitNow(ctx context.Context, only []int32) {
	c.mu.Lock()
	offsets := map[int32]int64{}
	for p, t := range c.parts {
		if only != nil && !slices.Contains(only, p) {
			continue
		}
		if at, ok := t.point(); ok && at > t.committed {
			offsets[p] = at
		}
	}
	c.mu.Unlock()
	if len(offsets) == 0 {
		return
	}
	var err error
	if c.partition < 0 {
		err = c.commitGroup(ctx, offsets)
	} else {
		err = c.commitDirect(ctx, offsets)
	}
	if err != nil {
		if ctx.Err() == nil {
			c.b.log.Warn("kafka bridge: offsets not committed", "topic", c.topic, "group", c.group, "err", err)
		}
		return
	}
	c.mu.Lock()
	for p, at := range offsets {
		if t := c.parts[p]; t != nil {
			t.committed = max(t.committed, at)
		}
	}
	c.mu.Unlock()
}

// commitGroup commits as the group's member.
func (c *consumer) commitGroup(ctx context.Context, offsets map[int32]int64) error {
	eo := make(map[int32]kgo.EpochOffset, len(offsets))
	for p, at := range offsets {
		eo[p] = kgo.EpochOffset{Epoch: -1, Offset: at}
	}
	var err error
	c.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{c.topic: eo},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, e error) {
			err = e
			if err == nil {
				err = commitErr(resp)
			}
		})
	return err
}

// commitDirect commits for the group without being its member (a simple
// commit, generation -1), as a partition filter's link reads outside the
// group's assignment.
func (c *consumer) commitDirect(ctx context.Context, offsets map[int32]int64) error {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group = c.group
	req.Generation = -1
	t := kmsg.NewOffsetCommitRequestTopic()
	t.Topic, t.TopicID = c.topic, c.topicID
	for p, at := range offsets {
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch = p, at, -1
		t.Partitions = append(t.Partitions, rp)
	}
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, c.cl)
	if err != nil {
		return err
	}
	return commitErr(resp)
}

func commitErr(resp *kmsg.OffsetCommitResponse) error {
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("partition %d: %w", p.Partition, err)
			}
		}
	}
	return nil
}

// revoked commits what was settled of the partitions the group takes
// away and forgets them: their unsettled messages go to the next owner.
func (c *consumer) revoked(ctx context.Context, _ *kgo.Client, lost map[string][]int32) {
	c.commitNow(ctx, lost[c.topic])
	c.lost(ctx, nil, lost)
}

// lost forgets partitions without committing.
func (c *consumer) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	ps := lost[c.topic]
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range ps {
		if t := c.parts[p]; t != nil {
			c.unsettled -= t.out
			delete(c.parts, p)
		}
	}
	gone := func(r *kgo.Record) bool { return slices.Contains(ps, r.Partition) }
	c.pending = slices.DeleteFunc(c.pending, gone)
	c.retry = slices.DeleteFunc(c.retry, gone)
}

// tracker is the settlement state of one partition: the offsets sent and
// not yet done, in order. The commit point is the first of them, or past
// the last sent when all are done; offsets done out of order wait for
// the ones before. Kafka's offsets may have gaps (compaction, transaction
// markers), so it counts offsets seen, not numbers.
type tracker struct {
	pend      []int64 // sent, ascending; the done ones are in doneSet
	doneSet   map[int64]bool
	last      int64 // last sent + 1; 0: nothing sent
	committed int64
	out       int // sent and waiting for the application's outcome
}

func (t *tracker) sent(off int64) {
	t.pend = append(t.pend, off)
	t.last = off + 1
}

// done marks off settled and reports whether the commit point moved.
func (t *tracker) done(off int64) bool {
	if len(t.pend) == 0 || off < t.pend[0] {
		return false
	}
	if off != t.pend[0] {
		if t.doneSet == nil {
			t.doneSet = map[int64]bool{}
		}
		t.doneSet[off] = true
		return false
	}
	t.pend = t.pend[1:]
	for len(t.pend) > 0 && t.doneSet[t.pend[0]] {
		delete(t.doneSet, t.pend[0])
		t.pend = t.pend[1:]
	}
	if len(t.pend) == 0 {
		t.pend = nil
	}
	return true
}

// point is the offset to commit: the next one to read after a restart.
func (t *tracker) point() (int64, bool) {
	if len(t.pend) > 0 {
		return t.pend[0], true
	}
	return t.last, t.last > 0
}

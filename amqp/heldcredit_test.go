package amqp

import "testing"

// TestUnsettledHoldsCredit: deliveries an application received but has
// not settled count against the receiver's credit, so that an
// application settling asynchronously holds at most Credit messages;
// settling frees the credit again.
func TestUnsettledHoldsCredit(t *testing.T) {
	checkGoroutines(t)
	const credit = 4
	got := make(chan *Delivery, 3*credit)
	b := newTestBroker()
	l := startListener(t, b, &ListenerOptions{Credit: credit, Handler: HandlerFunc(func(req *LinkRequest) error {
		if req.Receiver == nil || req.Address != "held" {
			return b.HandleLink(req)
		}
		b.links.Add(1)
		go func() {
			defer b.links.Done()
			for {
				d, err := req.Receiver.Receive(testCtx(t))
				if err != nil {
					return
				}
				got <- d
			}
		}()
		return nil
	})})
	c := dialTest(t, l, nil)
	s := mustSession(t, c)
	ctx := testCtx(t)
	snd, err := s.NewSender(ctx, "held", nil)
	if err != nil {
		t.Fatal(err)
	}
	outcomes := make(chan error, 3*credit)
	sent := 0
	send := func(max int) {
		t.Helper()
		for sent < max {
			select {
			case <-snd.CreditAvailable():
			case <-ctx.Done():
				t.Fatalf("no credit for message %d", sent)
			}
			ok, err := snd.TrySend(&Message{Data: [][]byte{[]byte("m")}}, nil, func(err error) { outcomes <- err })
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				sent++
			}
		}
	}
	send(credit)
	var held []*Delivery
	for range credit {
		select {
		case d := <-got:
			held = append(held, d)
		case <-ctx.Done():
			t.Fatal("the server did not receive the messages")
		}
	}
	// The server answered every attach and flow before this attach's
	// answer: a top-up for the held messages would have arrived by now.
	if _, err := s.NewSender(ctx, "other", nil); err != nil {
		t.Fatal(err)
	}
	if n := snd.Credit(); n != 0 {
		t.Fatalf("credit %d with %d messages unsettled at the receiver, want 0", n, credit)
	}
	for _, d := range held[:credit/2] {
		if err := d.Accept(ctx); err != nil {
			t.Fatal(err)
		}
	}
	send(credit + credit/2) // waits for the credit the settlements freed
	if n := snd.Credit(); n != 0 {
		t.Errorf("credit %d after using what %d settlements freed, want 0", n, credit/2)
	}
	for range credit / 2 {
		if err := <-outcomes; err != nil {
			t.Errorf("outcome %v, want accepted", err)
		}
	}
}

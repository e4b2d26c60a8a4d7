package natsjs

import (
	"strings"
	"testing"
)

func TestTopicStreamNameFitsTheServer(t *testing.T) {
	if got := topicStreamName("shop", "order_placed"); got != "TROUPE_shop_EVENTS@order_placed" {
		t.Errorf("short name: %s", got)
	}
	ns, a, b := strings.Repeat("n", 128), strings.Repeat("t", 127)+"a", strings.Repeat("t", 127)+"b"
	na, nb := topicStreamName(ns, a), topicStreamName(ns, b)
	if len(na) != maxStreamName || len(nb) != maxStreamName {
		t.Errorf("long names are %d and %d characters, want %d", len(na), len(nb), maxStreamName)
	}
	if na == nb {
		t.Errorf("two long topics share the stream %s", na)
	}
	if !strings.HasPrefix(na, "TROUPE_"+ns+"_EVENTS@ttt") {
		t.Errorf("a long name does not start with the namespace and topic: %s", na)
	}
}

// Package contract catches breaking changes to a troupe app's events before
// they ship, knowing who consumes what.
//
// In a choreography, services are coupled by the shape of their events: a
// field renamed in one service breaks a handler in another, and nothing
// fails until the event arrives. troupe knows both sides from the code: the
// topics a program publishes with the Go type of their data, and the Go
// type each subscription's handler decodes. This package writes that down
// as a contract and compares contracts.
//
// Importing the package adds the contract command to every app binary that
// uses [troupe.App.Main]:
//
//	import _ "github.com/troupe-go/troupe/contract"
//
//	$ shop contract export > contracts/shop.json          # commit it at each release
//	$ shop contract check --against contracts/shop.json   # in CI: exit status 1 on a breaking change
//	$ shop contract check --against contracts/shop.json other-repo/contracts/billing.json --format markdown
//
// # The contract
//
// A contract ([Contract]) is an AsyncAPI 3.0 document, the one the topology
// package writes, with three x-troupe extensions (see [Contract.Write]):
// which services the program declares; for each topic, the version it
// publishes, its publishers and the upcasters with the schema of each older
// version they read; and for each subscription, the schema of what its
// handler reads. Any AsyncAPI tool reads it; this package reads it back
// with [ReadFile].
//
// # What a handler reads
//
// By default a subscription needs every field of its handler's Go type, as
// the topology's schema describes it: a field is required unless tagged
// omitempty or omitzero. That is the floor: nothing in a Go program says
// which fields a handler really uses. [Reads] declares them, narrowing what
// the subscription needs to the fields named, so that a producer may stop
// sending a field no consumer reads:
//
//	contract.Reads(troupe.Subscribe(billing, OrderPlaced, "charge", charge), "order_id", "total_cents")
//
// # Baselines and rules
//
// [Check] compares the contract of the code with baselines. The baseline
// that declares services of this program is its earlier release: its
// events are still in flight, in backlogs, in history and in dead letters.
// The other services of the baselines are other programs of the same app
// (troupe apps share a namespace on the broker; another repository's
// program joins it under the same app name), whose consumers keep running.
//
// Every producer of a topic version is checked against every consumer of
// it, where one of the two is the code: the code's events against the
// other programs' consumers, and the earlier release's (and other
// programs') events against the code's consumers. A consumer's needs are
// met when every field it requires is required in the producer's schema,
// and every field it reads has a type it accepts (an integer is a number),
// null only where it accepts null, its format, and only values of its enum.
//
// With an earlier release, the check also lists what changed, field by
// field, and gives each change the problems it causes. A change that
// causes none is compatible, and the report says why ("no consumer reads
// it"); one that causes some is breaking, and names the subscriptions it
// breaks with what each meets. So, for a topic version published before
// and now:
//
//   - an optional field added is compatible; a required field added, or a
//     field made required, breaks the code's own subscriptions that need
//     it, since events published before lack it;
//   - a field removed or renamed breaks the consumers that read it under
//     its old name, and a renamed required field breaks the readers of its
//     new name too;
//   - a type changed breaks readers that do not accept the new type (an
//     integer widened to a number breaks only readers of integers); a
//     field made optional or nullable breaks readers that require it, or
//     do not accept null;
//   - an enum narrowed breaks the code's readers (older events may carry
//     the value removed); an enum widened breaks readers that do not know
//     the new value;
//   - a version no longer published breaks other programs that read it
//     and not the new one, and the code's subscriptions unless an upcaster
//     reads it (troupe.Upcast); a topic no longer published breaks the
//     programs that read it; an upcaster removed breaks the subscriptions
//     of its topic;
//   - new topics, new versions, new upcasters and new subscriptions are
//     compatible when what is published meets what is read.
//
// A breaking change made as a new version of the topic, with an upcaster
// from the old one, is therefore compatible as long as no other program
// reads the old version alone. To accept a breaking change on purpose,
// commit the new export as the baseline.
//
// A field removed and another added in the same object with the same
// schema are reported as a rename. Problems between the code and another
// program that no change explains (there is no earlier release to compare
// with, or the other program changed) are reported as changes of their own.
//
// The check does not know about processes of the earlier release still
// running during a rolling deploy: roll consumers out before producers, as
// docs/concepts.md says.
package contract

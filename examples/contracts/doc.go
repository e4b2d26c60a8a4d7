// Package contracts holds the event-contract checks of the example apps
// (fooddelivery, usermgmt, jobfeed, shop); it has tests and test data
// only:
//
//   - each app's binary runs 'contract check' against the export committed
//     in testdata/baseline, as a CI job would, and must pass on unchanged
//     code (go test -run TestExampleAppsKeepTheirContracts -update writes
//     the exports again, after a change made on purpose);
//   - a table of schema changes, made to the exports frozen in
//     testdata/exports, checks how each change is classified, and sets
//     those verdicts beside @asyncapi/diff's (npm, locked in
//     testdata/asyncapi-diff).
package contracts

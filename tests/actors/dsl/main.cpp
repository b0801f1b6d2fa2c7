// The test-coordinator suites (CAF's deterministic scheduler): one actor at a
// time consumes one message, timeouts fire only when a test triggers them,
// and nothing sleeps. CAF's own test runner provides main().
#define CAF_SUITE actors_dsl
#include <caf/test/unit_test_impl.hpp>

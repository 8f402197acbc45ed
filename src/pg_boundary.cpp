// The C++/PostgreSQL error boundary; the rules are in pg_boundary.hpp.
#include "pg_boundary.hpp"

#include <cstdio>
#include <new>

// In assert-enabled servers, and in builds with PGLOCKS_DEBUG (the valgrind suite's), the
// boundary checks that a body leaves PostgreSQL's error stacks as it found them: a body that
// returned or threw from inside a PG_TRY, or with an error context callback still pushed,
// would leave them pointing into its dead frame, and the next error would jump there.
#if defined(USE_ASSERT_CHECKING) || defined(PGLOCKS_DEBUG)
#define PGLOCKS_CHECK_ERROR_STACKS 1
#endif

namespace pglocks {

Error::Error(int sqlstate, const char* message) noexcept : sqlstate_(sqlstate) {
    std::snprintf(message_, sizeof(message_), "%s", message);
}

#ifdef PGLOCKS_CHECK_ERROR_STACKS
namespace {
struct ErrorStacks {
    sigjmp_buf* exception_stack;
    ErrorContextCallback* context_stack;
};

ErrorStacks current_error_stacks() { return ErrorStacks{PG_exception_stack, error_context_stack}; }

// The stacks are corrupt: no error can be raised safely any more.
void check_error_stacks(const ErrorStacks& entry, FunctionCallInfo fcinfo, const char* how) {
    const ErrorStacks now = current_error_stacks();
    if (now.exception_stack == entry.exception_stack && now.context_stack == entry.context_stack)
        return;
    PG_exception_stack = entry.exception_stack;
    error_context_stack = entry.context_stack;
    elog(PANIC, "pglocks function %u %s with %s changed", fcinfo->flinfo->fn_oid, how,
         now.exception_stack != entry.exception_stack ? "PG_exception_stack"
                                                      : "error_context_stack");
}
}  // namespace
#endif

Datum run_boundary(FunctionCallInfo fcinfo, Body body) {
#ifdef PGLOCKS_CHECK_ERROR_STACKS
    const ErrorStacks entry = current_error_stacks();
#endif
    int sqlstate = 0;
    char message[256];
    try {
        const Datum result = body(fcinfo);
#ifdef PGLOCKS_CHECK_ERROR_STACKS
        check_error_stacks(entry, fcinfo, "returned");
#endif
        return result;
    } catch (const Error& e) {
        sqlstate = e.sqlstate();
        std::snprintf(message, sizeof(message), "%s", e.what());
    } catch (const std::bad_alloc&) {
        sqlstate = ERRCODE_OUT_OF_MEMORY;
        std::snprintf(message, sizeof(message), "out of memory in pglocks");
    } catch (const std::exception& e) {
        sqlstate = ERRCODE_INTERNAL_ERROR;
        std::snprintf(message, sizeof(message), "pglocks internal error: %s", e.what());
    } catch (...) {
        sqlstate = ERRCODE_INTERNAL_ERROR;
        std::snprintf(message, sizeof(message), "pglocks internal error");
    }
#ifdef PGLOCKS_CHECK_ERROR_STACKS
    check_error_stacks(entry, fcinfo, "threw");
#endif
    ereport(ERROR, (errcode(sqlstate), errmsg_internal("%s", message)));
    pg_unreachable();
}

}  // namespace pglocks

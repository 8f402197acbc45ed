// The C++/PostgreSQL error boundary; the rules are in pg_boundary.hpp.
#include "pg_boundary.hpp"

#include <cstdio>
#include <new>

namespace pglocks {

Error::Error(int sqlstate, const char* message) noexcept : sqlstate_(sqlstate) {
    std::snprintf(message_, sizeof(message_), "%s", message);
}

Datum run_boundary(FunctionCallInfo fcinfo, Body body) {
    int sqlstate = 0;
    char message[256];
    try {
        return body(fcinfo);
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
    ereport(ERROR, (errcode(sqlstate), errmsg_internal("%s", message)));
    pg_unreachable();
}

}  // namespace pglocks

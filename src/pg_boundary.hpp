// The C++/PostgreSQL error boundary that every SQL-callable function of pglocks goes through.
//
// The rules, kept true by every file in src/:
//  1. No C++ exception ever crosses an extern "C" function: PGLOCKS_FUNCTION wraps each
//     SQL-callable body in run_boundary(), which catches everything.
//  2. No PostgreSQL error (a longjmp) ever unwinds a C++ frame that owns an object with a
//     destructor. Bodies and the pg_*.cpp helpers hold plain data only (pointers, integers,
//     iterators of the registry, which are trivially destructible) while they call
//     PostgreSQL; the code that owns std::string/std::vector (holds_registry.cpp,
//     lock_key.cpp) never calls PostgreSQL and does not include postgres.h.
//  3. Memory handed to PostgreSQL is palloc'd in the caller's memory context. The holds
//     registry lives for the whole backend in one static object (malloc-backed C++
//     containers, owned by pg_holds.cpp); std::bad_alloc becomes SQLSTATE 53200.
//  4. Loops that can run long (hashing a huge key) call CHECK_FOR_INTERRUPTS().
//  5. An exception is turned into an ERROR only after its catch block has closed: the
//     message is copied into a fixed buffer inside the catch (no palloc there, since a
//     failing palloc would longjmp out of the catch and strand the exception object).
#pragma once

#include "pg_compat.hpp"

extern "C" {
#include "fmgr.h"
}

#include <exception>

namespace pglocks {

// A C++ error carrying its SQLSTATE, for code that detects a problem in C++ context.
class Error : public std::exception {
public:
    Error(int sqlstate, const char* message) noexcept;
    int sqlstate() const noexcept { return sqlstate_; }
    const char* what() const noexcept override { return message_; }

private:
    int sqlstate_;
    char message_[256];
};

using Body = Datum (*)(FunctionCallInfo);

// Runs body; any C++ exception becomes ereport(ERROR) after the catch has closed.
Datum run_boundary(FunctionCallInfo fcinfo, Body body);

}  // namespace pglocks

// Defines an SQL-callable function whose body runs inside the boundary:
//   PGLOCKS_FUNCTION(pglocks_key) { ... return Datum; }
#define PGLOCKS_FUNCTION(name)                                                                     \
    static Datum name##_body(FunctionCallInfo fcinfo);                                             \
    extern "C" {                                                                                   \
    PG_FUNCTION_INFO_V1(name);                                                                     \
    }                                                                                              \
    extern "C" Datum name(PG_FUNCTION_ARGS) { return pglocks::run_boundary(fcinfo, name##_body); } \
    static Datum name##_body(FunctionCallInfo fcinfo)

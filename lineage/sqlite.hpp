// lineage/sqlite.hpp — private to lineage/: an owned SQLite connection and its statements,
// and SQLite's result codes turned into errors that say what to do.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "common/error.hpp"
#include "lineage/store.hpp"

namespace cohort::lineage::detail {

class Database;

// One prepared statement, reset and its bindings cleared for every use.
class Statement {
 public:
  Statement(Database& db, sqlite3_stmt* stmt) : db_(&db), stmt_(stmt) {}
  Statement(Statement&& other) noexcept : db_(other.db_), stmt_(std::exchange(other.stmt_, nullptr)) {}
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() { sqlite3_finalize(stmt_); }

  // Ready for a new run: the last one's row and bindings forgotten.
  Statement& start();
  Statement& bind(int at, std::int64_t value);
  Statement& bind(int at, double value);
  Statement& bind(int at, const std::string& value);
  Statement& bind(int at, const Property& value);
  // Runs to the next row: false when there is none.
  bool step();
  // Runs a statement that returns no rows.
  void run() {
    while (step()) {
    }
  }

  std::int64_t integer(int column) const { return sqlite3_column_int64(stmt_, column); }
  double real(int column) const { return sqlite3_column_double(stmt_, column); }
  std::string text(int column) const;
  Property property(int column) const;

 private:
  Database* db_;
  sqlite3_stmt* stmt_;
};

class Database {
 public:
  // Opens (creating) the file; nothing is read yet: SQLite reads lazily.
  explicit Database(const std::filesystem::path& path);
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  ~Database();

  const std::filesystem::path& path() const { return path_; }
  sqlite3* handle() const { return db_; }

  void exec(const std::string& sql);
  // The statement for `sql`, prepared once and kept for the connection's life.
  Statement& statement(const std::string& sql);
  bool in_transaction() const { return sqlite3_get_autocommit(db_) == 0; }

  // Throws the error `rc` means, naming the file and `what` was being done: a BusyError
  // when other connections held the lock.
  [[noreturn]] void fail(int rc, const std::string& what) const;

 private:
  std::filesystem::path path_;
  sqlite3* db_ = nullptr;
  std::map<std::string, std::unique_ptr<Statement>> statements_;
};

// The store's lock was held by others: what may be tried again.
class BusyError : public Error {
 public:
  using Error::Error;
};

}  // namespace cohort::lineage::detail

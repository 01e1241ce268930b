#include "lineage/sqlite.hpp"

#include <iostream>

#include "common/error.hpp"

namespace cohort::lineage::detail {

namespace {

// What the person who meets the error can do about it, by SQLite's primary result code.
std::string advice(int rc, const std::filesystem::path& path) {
  switch (rc & 0xff) {
    case SQLITE_NOTADB:
      return "it is not an SQLite database, so not a lineage store: set COHORT_LINEAGE to another file, or move "
             "this one away";
    case SQLITE_CORRUPT:
      return "the lineage store is damaged: recover what it holds with 'sqlite3 " + path.string() +
             " .recover | sqlite3 NEW.db', or move it away to start a new one";
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return "it cannot be written there: set COHORT_LINEAGE to a file in a directory you can write "
             "(or COHORT_LINEAGE=off to record nothing)";
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return "other writers held the store's lock for longer than the wait allows; try again";
    case SQLITE_FULL:
      return "the file system is full";
    default:
      return {};
  }
}

bool is_input(int rc) {
  switch (rc & 0xff) {
    case SQLITE_NOTADB:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return true;
    default:
      return false;
  }
}

}  // namespace

Statement& Statement::start() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  return *this;
}

Statement& Statement::bind(int at, std::int64_t value) {
  if (int rc = sqlite3_bind_int64(stmt_, at, value); rc != SQLITE_OK) db_->fail(rc, "binding a value");
  return *this;
}

Statement& Statement::bind(int at, double value) {
  if (int rc = sqlite3_bind_double(stmt_, at, value); rc != SQLITE_OK) db_->fail(rc, "binding a value");
  return *this;
}

Statement& Statement::bind(int at, const std::string& value) {
  if (int rc = sqlite3_bind_text(stmt_, at, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
      rc != SQLITE_OK) {
    db_->fail(rc, "binding a value");
  }
  return *this;
}

Statement& Statement::bind(int at, const Property& value) {
  std::visit([&](const auto& v) { bind(at, v); }, value);
  return *this;
}

bool Statement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  const std::string sql = sqlite3_sql(stmt_);
  sqlite3_reset(stmt_);
  db_->fail(rc, sql.substr(0, sql.find(' ')) == "SELECT" ? "reading" : "writing");
}

std::string Statement::text(int column) const {
  const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
  return data ? std::string(data, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column))) : std::string();
}

Property Statement::property(int column) const {
  switch (sqlite3_column_type(stmt_, column)) {
    case SQLITE_INTEGER:
      return integer(column);
    case SQLITE_FLOAT:
      return real(column);
    default:
      return text(column);
  }
}

Database::Database(const std::filesystem::path& path) : path_(path) {
  const int rc =
      sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    // A handle comes back even when opening fails, for its message; it must still be closed.
    std::string message = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    db_ = nullptr;
    std::string text = path.string() + ": cannot open the lineage store (" + message + ")";
    if (auto a = advice(rc, path); !a.empty()) text += ": " + a;
    throw Error(text, is_input(rc) ? ErrorKind::input : ErrorKind::failure);
  }
  sqlite3_extended_result_codes(db_, 1);
}

Database::~Database() {
  statements_.clear();  // every statement is finalized before the connection closes
  if (db_ && sqlite3_close(db_) != SQLITE_OK) {
    std::cerr << "cohort: lineage: closing " << path_.string() << ": " << sqlite3_errmsg(db_) << "\n";
  }
}

void Database::exec(const std::string& sql) {
  char* message = nullptr;
  const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message);
  sqlite3_free(message);
  if (rc != SQLITE_OK) fail(rc, sql.substr(0, sql.find_first_of(" ;")) == "SELECT" ? "reading" : "writing");
}

Statement& Database::statement(const std::string& sql) {
  auto& slot = statements_[sql];
  if (!slot) {
    sqlite3_stmt* stmt = nullptr;
    if (int rc = sqlite3_prepare_v3(db_, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr); rc != SQLITE_OK) {
      statements_.erase(sql);
      fail(rc, "reading");
    }
    slot = std::make_unique<Statement>(*this, stmt);
  }
  return slot->start();
}

void Database::fail(int rc, const std::string& what) const {
  std::string text = path_.string() + ": " + what + " the lineage store: " + sqlite3_errmsg(db_);
  if (auto a = advice(rc, path_); !a.empty()) text += ": " + a;
  if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) throw BusyError(text, ErrorKind::failure);
  throw Error(text, is_input(rc) ? ErrorKind::input : ErrorKind::failure);
}

}  // namespace cohort::lineage::detail

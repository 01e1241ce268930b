#include "lineage/store.hpp"

#include <sys/vfs.h>

#include <chrono>
#include <set>
#include <sstream>
#include <thread>

#include "common/environment.hpp"
#include "common/error.hpp"
#include "common/fd.hpp"
#include "lineage/sqlite.hpp"

namespace cohort::lineage {

namespace fs = std::filesystem;
using detail::Database;
using detail::Statement;

namespace {

// "cohL" in the file's header: what tells a lineage store from another program's database.
constexpr std::int64_t kApplicationId = 0x636f684c;
constexpr int kSchemaVersion = 1;
// How long a writer waits for another's lock before giving up. Writes are small
// transactions, so a long wait means something else holds the file.
constexpr int kBusyTimeoutMs = 60000;

// Properties belong to one of three kinds of object.
enum Owner : std::int64_t { kArtifact = 0, kExecution = 1, kContext = 2 };

const char* const kSchema = R"sql(
CREATE TABLE IF NOT EXISTS artifacts(
  id INTEGER PRIMARY KEY, type TEXT NOT NULL, uri TEXT NOT NULL, name TEXT NOT NULL DEFAULT '',
  digest TEXT NOT NULL DEFAULT '', created REAL NOT NULL, UNIQUE(type, uri, digest));
CREATE INDEX IF NOT EXISTS artifacts_by_uri ON artifacts(uri);
CREATE TABLE IF NOT EXISTS executions(
  id INTEGER PRIMARY KEY, type TEXT NOT NULL, name TEXT NOT NULL DEFAULT '', state TEXT NOT NULL DEFAULT '',
  created REAL NOT NULL, updated REAL NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS executions_by_name ON executions(type, name) WHERE name <> '';
CREATE TABLE IF NOT EXISTS contexts(
  id INTEGER PRIMARY KEY, type TEXT NOT NULL, name TEXT NOT NULL, created REAL NOT NULL, UNIQUE(type, name));
CREATE TABLE IF NOT EXISTS properties(
  owner_kind INTEGER NOT NULL, owner INTEGER NOT NULL, name TEXT NOT NULL, value,
  PRIMARY KEY(owner_kind, owner, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events(
  execution INTEGER NOT NULL REFERENCES executions(id), artifact INTEGER NOT NULL REFERENCES artifacts(id),
  type TEXT NOT NULL CHECK(type IN ('INPUT', 'OUTPUT')), path TEXT NOT NULL DEFAULT '', time REAL NOT NULL,
  PRIMARY KEY(execution, artifact, type, path)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_by_artifact ON events(artifact, type);
CREATE TABLE IF NOT EXISTS attributions(
  context INTEGER NOT NULL REFERENCES contexts(id), artifact INTEGER NOT NULL REFERENCES artifacts(id),
  PRIMARY KEY(context, artifact)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS attributions_by_artifact ON attributions(artifact);
CREATE TABLE IF NOT EXISTS associations(
  context INTEGER NOT NULL REFERENCES contexts(id), execution INTEGER NOT NULL REFERENCES executions(id),
  PRIMARY KEY(context, execution)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS associations_by_execution ON associations(execution);
)sql";

double now() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

void require(const std::string& value, const char* what, const char* field);

}  // namespace

bool on_network_file_system(const fs::path& dir) {
  struct statfs s {};
  if (::statfs(dir.c_str(), &s) != 0) return false;
  switch (static_cast<unsigned long>(s.f_type)) {
    case 0x6969UL:      // NFS
    case 0xFF534D42UL:  // CIFS
    case 0xFE534D42UL:  // SMB2
    case 0x0BD00BD0UL:  // Lustre
    case 0x47504653UL:  // GPFS
    case 0x19830326UL:  // BeeGFS
    case 0x00C36400UL:  // CephFS
    case 0x01021997UL:  // 9p
    case 0x65735546UL:  // FUSE
      return true;
    default:
      return false;
  }
}

namespace {

void require(const std::string& value, const char* what, const char* field) {
  if (value.empty()) throw input_error(std::string(what) + ": the " + field + " is empty; give one");
}

}  // namespace

std::string to_text(const Property& property) {
  if (const auto* s = std::get_if<std::string>(&property)) return *s;
  if (const auto* i = std::get_if<std::int64_t>(&property)) return std::to_string(*i);
  std::ostringstream out;
  out << std::get<double>(property);
  return out.str();
}

const char* to_string(EventType type) { return type == EventType::input ? "INPUT" : "OUTPUT"; }

struct Store::Impl {
  explicit Impl(const fs::path& p) : db(p) {}
  Database db;

  void write(const std::function<void()>& work);
  void set_up();
  void set_up_once();
  void put_properties(Owner kind, std::int64_t owner, const Properties& properties);
  std::int64_t put(const std::string& sql, std::initializer_list<Property> values, Owner kind, const Properties& given);
  void link(const char* what, std::pair<const char*, std::int64_t> first, std::pair<const char*, std::int64_t> second,
            const std::string& sql, std::initializer_list<Property> values);
  Properties properties(Owner kind, std::int64_t owner);
  // Every T (Artifact, Execution, Context) that `where` selects with `values` bound in
  // order, each with its properties.
  template <typename T>
  std::vector<T> find(const std::string& where, std::initializer_list<Property> values);
};

// Work that writes, in one transaction of its own, or in a savepoint of the one it is in. IMMEDIATE:
// the write lock is taken (waiting as the busy timeout allows) before anything is read, so
// two writers never both read and then find they cannot upgrade.
void Store::Impl::write(const std::function<void()>& work) {
  if (db.in_transaction()) {
    // Nested work is atomic too: a savepoint undoes it alone when it fails.
    db.exec("SAVEPOINT nested");
    try {
      work();
      db.exec("RELEASE nested");
    } catch (...) {
      sqlite3_exec(db.handle(), "ROLLBACK TO nested; RELEASE nested", nullptr, nullptr, nullptr);
      throw;
    }
    return;
  }
  db.exec("BEGIN IMMEDIATE");
  try {
    work();
    db.exec("COMMIT");
  } catch (...) {
    if (db.in_transaction()) sqlite3_exec(db.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

namespace {

// What the file says about itself. Read in one transaction: a store being created by
// another process gets its tables and its application id in one commit.
struct Header {
  std::int64_t application = 0;
  std::int64_t tables = 0;
  std::int64_t version = 0;
};

Header read_header(Database& db) {
  Header h;
  for (auto [sql, field] : {std::pair{"PRAGMA application_id", &Header::application},
                            std::pair{"SELECT count(*) FROM sqlite_master", &Header::tables},
                            std::pair{"PRAGMA user_version", &Header::version}}) {
    Statement& s = db.statement(sql);
    s.step();
    h.*field = s.integer(0);
    s.start();
  }
  return h;
}

// Refuses another program's database before anything in it is changed.
void check_header(const Database& db, const Header& h) {
  if (h.application != kApplicationId && (h.application != 0 || h.tables > 0)) {
    throw input_error(db.path().string() +
                      ": an SQLite database of another program, not a lineage store: set "
                      "COHORT_LINEAGE to another file");
  }
  if (h.version > kSchemaVersion) {
    throw input_error(db.path().string() + ": written by a newer cohort (store version " + std::to_string(h.version) +
                      ", this one reads " + std::to_string(kSchemaVersion) + "): use that cohort");
  }
}

}  // namespace

// Setting a store up races with other processes setting it up: turning WAL on needs the file
// to itself, and SQLite answers that with SQLITE_BUSY at once, not through the busy handler.
// The set-up is idempotent, so it is tried again, with growing pauses, for as long as the
// busy timeout would have waited.
void Store::Impl::set_up() {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kBusyTimeoutMs);
  for (int attempt = 0;; ++attempt) {
    try {
      set_up_once();
      return;
    } catch (const detail::BusyError&) {
      if (std::chrono::steady_clock::now() >= deadline) throw;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1 << std::min(attempt, 7)));  // 1 ms .. 128 ms
  }
}

void Store::Impl::set_up_once() {
  sqlite3_busy_timeout(db.handle(), kBusyTimeoutMs);
  // The header is read here first: a file that is no database fails at this line.
  Header h;
  db.exec("BEGIN");
  try {
    h = read_header(db);
    check_header(db, h);
    db.exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  const bool network = on_network_file_system(db.path().parent_path());
  // WAL lets readers read while one writes, but its index lives in memory shared by the
  // processes of one machine: on a network file system SQLite's own rollback journal it is.
  db.exec(network ? "PRAGMA journal_mode=DELETE" : "PRAGMA journal_mode=WAL");
  // A machine's crash may lose the last records written before it, never the store: WAL
  // commits are synced at checkpoints. Each recording process opens the store for one
  // record, so the last one out leaves the checkpoint to the next writer's commit rather
  // than syncing the whole file on every close.
  db.exec("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON");
  if (!network) sqlite3_db_config(db.handle(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
  if (h.application == kApplicationId && h.version == kSchemaVersion) return;
  write([&] {
    // Again, under the write lock: another process may have created the store meanwhile.
    const Header now = read_header(db);
    check_header(db, now);
    if (now.application == kApplicationId && now.version == kSchemaVersion) return;
    db.exec(kSchema);
    db.exec("PRAGMA application_id=" + std::to_string(kApplicationId) +
            "; PRAGMA user_version=" + std::to_string(kSchemaVersion));
  });
}

void Store::Impl::put_properties(Owner kind, std::int64_t owner, const Properties& properties) {
  for (const auto& [name, value] : properties) {
    if (name.empty()) throw input_error("a property's name is empty; give each property a name");
    db.statement(
          "INSERT INTO properties(owner_kind, owner, name, value) VALUES(?, ?, ?, ?) "
          "ON CONFLICT(owner_kind, owner, name) DO UPDATE SET value = excluded.value")
        .bind(1, std::int64_t{kind})
        .bind(2, owner)
        .bind(3, name)
        .bind(4, value)
        .run();
  }
}

Properties Store::Impl::properties(Owner kind, std::int64_t owner) {
  Statement& s = db.statement("SELECT name, value FROM properties WHERE owner_kind = ? AND owner = ? ORDER BY name");
  s.bind(1, std::int64_t{kind}).bind(2, owner);
  Properties out;
  while (s.step()) out.emplace(s.text(0), s.property(1));
  return out;
}

namespace {

// How each kind of object is read: its columns, its row, the owner kind of its properties.
template <typename T>
struct Table;

template <>
struct Table<Artifact> {
  static constexpr Owner owner = kArtifact;
  static constexpr const char* select = "SELECT id, type, uri, name, digest, created FROM artifacts ";
  static Artifact row(const Statement& s) {
    return {s.integer(0), s.text(1), s.text(2), s.text(3), s.text(4), {}, s.real(5)};
  }
};

template <>
struct Table<Execution> {
  static constexpr Owner owner = kExecution;
  static constexpr const char* select = "SELECT id, type, name, state, created, updated FROM executions ";
  static Execution row(const Statement& s) {
    return {s.integer(0), s.text(1), s.text(2), s.text(3), {}, s.real(4), s.real(5)};
  }
};

template <>
struct Table<Context> {
  static constexpr Owner owner = kContext;
  static constexpr const char* select = "SELECT id, type, name, created FROM contexts ";
  static Context row(const Statement& s) { return {s.integer(0), s.text(1), s.text(2), {}, s.real(3)}; }
};

template <typename T>
std::optional<T> first(std::vector<T> found) {
  if (found.empty()) return std::nullopt;
  return std::move(found.front());
}

}  // namespace

template <typename T>
std::vector<T> Store::Impl::find(const std::string& where, std::initializer_list<Property> values) {
  Statement& s = db.statement(Table<T>::select + where);
  int at = 1;
  for (const auto& v : values) s.bind(at++, v);
  std::vector<T> out;
  while (s.step()) out.push_back(Table<T>::row(s));
  for (auto& x : out) x.properties = properties(Table<T>::owner, x.id);
  return out;
}

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::Store(Store&&) noexcept = default;
Store& Store::operator=(Store&&) noexcept = default;
Store::~Store() = default;

Store Store::open(const fs::path& path) {
  if (path.empty()) throw input_error("the lineage store's path is empty: set COHORT_LINEAGE to a file");
  const fs::path absolute = fs::absolute(path);
  std::error_code ec;
  if (fs::is_directory(absolute, ec)) {
    throw input_error(absolute.string() + ": is a directory: give the lineage store a file name, e.g. " +
                      (absolute / "lineage.db").string());
  }
  if (!fs::exists(absolute.parent_path(), ec)) make_directories(absolute.parent_path().string(), 0700);
  auto impl = std::make_unique<Impl>(absolute);
  impl->set_up();
  return Store(std::move(impl));
}

fs::path Store::default_path() {
  const std::string given = env_or("COHORT_LINEAGE");
  if (!given.empty() && given != "off") return given;
  const std::string data = env_or("XDG_DATA_HOME");
  if (!data.empty()) return fs::path(data) / "cohort" / "lineage.db";
  const std::string home = env_or("HOME");
  if (home.empty()) throw input_error("neither COHORT_LINEAGE nor HOME is set: set COHORT_LINEAGE to the store's file");
  return fs::path(home) / ".local" / "share" / "cohort" / "lineage.db";
}

bool Store::enabled() { return env_or("COHORT_LINEAGE") != "off"; }

Store Store::open_default() {
  if (!enabled()) throw input_error("COHORT_LINEAGE is off: unset it, or set it to the store's file, to read lineage");
  return open(default_path());
}

const fs::path& Store::path() const { return impl_->db.path(); }

void Store::transaction(const std::function<void()>& work) { impl_->write(work); }

// Inserts or finds one object (`sql` ends in RETURNING id), then merges its properties.
std::int64_t Store::Impl::put(const std::string& sql, std::initializer_list<Property> values, Owner kind,
                              const Properties& given) {
  std::int64_t id = 0;
  write([&] {
    Statement& s = db.statement(sql);
    int at = 1;
    for (const auto& v : values) s.bind(at++, v);
    s.step();
    id = s.integer(0);
    s.run();
    put_properties(kind, id, given);
  });
  return id;
}

std::int64_t Store::put_artifact(const Artifact& a) {
  require(a.type, "artifact", "type");
  require(a.uri, ("artifact of type " + a.type).c_str(), "uri");
  return impl_->put(
      "INSERT INTO artifacts(type, uri, name, digest, created) VALUES(?, ?, ?, ?, ?) "
      "ON CONFLICT(type, uri, digest) DO UPDATE SET name = CASE WHEN excluded.name <> '' THEN excluded.name "
      "ELSE artifacts.name END RETURNING id",
      {a.type, a.uri, a.name, a.digest, now()}, kArtifact, a.properties);
}

std::int64_t Store::put_execution(const Execution& e) {
  require(e.type, "execution", "type");
  return impl_->put(
      "INSERT INTO executions(type, name, state, created, updated) VALUES(?1, ?2, ?3, ?4, ?4) "
      "ON CONFLICT(type, name) WHERE name <> '' DO UPDATE SET updated = excluded.updated, state = CASE WHEN "
      "excluded.state <> '' THEN excluded.state ELSE executions.state END RETURNING id",
      {e.type, e.name, e.state, now()}, kExecution, e.properties);
}

std::int64_t Store::put_context(const Context& c) {
  require(c.type, "context", "type");
  require(c.name, ("context of type " + c.type).c_str(), "name");
  return impl_->put(
      "INSERT INTO contexts(type, name, created) VALUES(?, ?, ?) "
      "ON CONFLICT(type, name) DO UPDATE SET type = contexts.type RETURNING id",
      {c.type, c.name, now()}, kContext, c.properties);
}

void Store::update_execution(std::int64_t id, const std::string& state, const Properties& properties) {
  impl_->write([&] {
    impl_->db
        .statement("UPDATE executions SET updated = ?, state = CASE WHEN ? <> '' THEN ? ELSE state END WHERE id = ?")
        .bind(1, now())
        .bind(2, state)
        .bind(3, state)
        .bind(4, id)
        .run();
    if (sqlite3_changes(impl_->db.handle()) == 0) {
      throw input_error("execution " + std::to_string(id) + ": not in " + path().string());
    }
    impl_->put_properties(kExecution, id, properties);
  });
}

// Writes one link between two objects (`sql` with `values`), once each object is found:
// a link to a missing one is an error naming it.
void Store::Impl::link(const char* what, std::pair<const char*, std::int64_t> first,
                       std::pair<const char*, std::int64_t> second, const std::string& sql,
                       std::initializer_list<Property> values) {
  write([&] {
    for (const auto& [kind, id] : {first, second}) {
      Statement& s = db.statement("SELECT 1 FROM " + std::string(kind) + "s WHERE id = ?");
      s.bind(1, id);
      const bool found = s.step();
      s.start();
      if (!found) {
        throw input_error(std::string(what) + ": no " + kind + " " + std::to_string(id) + " in " + db.path().string());
      }
    }
    Statement& s = db.statement(sql);
    int at = 1;
    for (const auto& v : values) s.bind(at++, v);
    s.run();
  });
}

void Store::put_event(std::int64_t execution, std::int64_t artifact, EventType type, const std::string& path) {
  impl_->link("event", {"execution", execution}, {"artifact", artifact},
              "INSERT OR IGNORE INTO events(execution, artifact, type, path, time) VALUES(?, ?, ?, ?, ?)",
              {execution, artifact, std::string(to_string(type)), path, now()});
}

void Store::attribute(std::int64_t context, std::int64_t artifact) {
  impl_->link("attribution", {"context", context}, {"artifact", artifact},
              "INSERT OR IGNORE INTO attributions(context, artifact) VALUES(?, ?)", {context, artifact});
}

void Store::associate(std::int64_t context, std::int64_t execution) {
  impl_->link("association", {"context", context}, {"execution", execution},
              "INSERT OR IGNORE INTO associations(context, execution) VALUES(?, ?)", {context, execution});
}

// ---- queries ----

std::optional<Artifact> Store::artifact(std::int64_t id) const {
  return first(impl_->find<Artifact>("WHERE id = ?", {id}));
}

std::vector<Artifact> Store::artifacts_at(const std::string& uri) const {
  return impl_->find<Artifact>("WHERE uri = ? ORDER BY id DESC", {uri});
}

std::optional<Execution> Store::execution(std::int64_t id) const {
  return first(impl_->find<Execution>("WHERE id = ?", {id}));
}

std::optional<Execution> Store::execution(const std::string& type, const std::string& name) const {
  return first(impl_->find<Execution>("WHERE type = ? AND name = ? AND name <> ''", {type, name}));
}

std::optional<Context> Store::context(std::int64_t id) const {
  return first(impl_->find<Context>("WHERE id = ?", {id}));
}

std::optional<Context> Store::context(const std::string& type, const std::string& name) const {
  return first(impl_->find<Context>("WHERE type = ? AND name = ?", {type, name}));
}

// An empty type selects every one.
std::vector<Artifact> Store::artifacts(const std::string& type) const {
  return impl_->find<Artifact>("WHERE ?1 = '' OR type = ?1 ORDER BY id", {type});
}

std::vector<Execution> Store::executions(const std::string& type) const {
  return impl_->find<Execution>("WHERE ?1 = '' OR type = ?1 ORDER BY id", {type});
}

std::vector<Context> Store::contexts(const std::string& type) const {
  return impl_->find<Context>("WHERE ?1 = '' OR type = ?1 ORDER BY id", {type});
}

namespace {

std::vector<Event> event_rows(Statement& s) {
  std::vector<Event> out;
  while (s.step()) {
    out.push_back({s.integer(0), s.integer(1), s.text(2) == "INPUT" ? EventType::input : EventType::output, s.text(3)});
  }
  return out;
}

}  // namespace

std::vector<Event> Store::events_of_execution(std::int64_t execution) const {
  return event_rows(
      impl_->db
          .statement("SELECT execution, artifact, type, path FROM events WHERE execution = ? ORDER BY time, artifact")
          .bind(1, execution));
}

std::vector<Event> Store::events_of_artifact(std::int64_t artifact) const {
  return event_rows(
      impl_->db
          .statement("SELECT execution, artifact, type, path FROM events WHERE artifact = ? ORDER BY time, execution")
          .bind(1, artifact));
}

namespace {

// The condition for the objects that `table`'s column `column` lists beside `key` = ?.
std::string listed_in(const char* table, const char* column, const char* key, const char* also = "") {
  return std::string("WHERE id IN (SELECT ") + column + " FROM " + table + " WHERE " + key + " = ?" + also +
         ") ORDER BY id";
}

}  // namespace

std::vector<Execution> Store::producers(std::int64_t artifact) const {
  return impl_->find<Execution>(listed_in("events", "execution", "artifact", " AND type = 'OUTPUT'"), {artifact});
}
std::vector<Execution> Store::consumers(std::int64_t artifact) const {
  return impl_->find<Execution>(listed_in("events", "execution", "artifact", " AND type = 'INPUT'"), {artifact});
}
std::vector<Context> Store::contexts_of_execution(std::int64_t execution) const {
  return impl_->find<Context>(listed_in("associations", "context", "execution"), {execution});
}
std::vector<Context> Store::contexts_of_artifact(std::int64_t artifact) const {
  return impl_->find<Context>(listed_in("attributions", "context", "artifact"), {artifact});
}
std::vector<Execution> Store::executions_in(std::int64_t context) const {
  return impl_->find<Execution>(listed_in("associations", "execution", "context"), {context});
}
std::vector<Artifact> Store::artifacts_in(std::int64_t context) const {
  return impl_->find<Artifact>(listed_in("attributions", "artifact", "context"), {context});
}

namespace {

// The execution an execution ran inside, as its "within" property names it ("TYPE/NAME"): the
// pipeline task a launch ran as, whose inputs are the launch's too.
std::optional<Execution> enclosing(const Store& store, const Execution& execution) {
  const auto it = execution.properties.find("within");
  if (it == execution.properties.end() || !std::holds_alternative<std::string>(it->second)) return std::nullopt;
  const std::string& within = std::get<std::string>(it->second);
  const auto slash = within.find('/');
  if (slash == std::string::npos || slash == 0) return std::nullopt;
  return store.execution(within.substr(0, slash), within.substr(slash + 1));
}

Ancestry walk(const Store& store, const Artifact& artifact, int depth, std::set<std::int64_t>& seen) {
  Ancestry node;
  node.artifact = artifact;
  if (!seen.insert(artifact.id).second || depth <= 0) {
    node.cut = true;
    return node;
  }
  std::vector<Execution> producers = store.producers(artifact.id);
  std::set<std::int64_t> shown;
  for (std::size_t i = 0; i < producers.size(); ++i) {  // grows as enclosing executions are found
    const Execution execution = producers[i];
    if (!shown.insert(execution.id).second) continue;
    Ancestry::Producer p;
    p.execution = execution;
    p.contexts = store.contexts_of_execution(execution.id);
    for (const auto& e : store.events_of_execution(execution.id)) {
      if (e.type != EventType::input) continue;
      p.inputs.push_back({e.path, walk(store, *store.artifact(e.artifact), depth - 1, seen)});
    }
    node.produced_by.push_back(std::move(p));
    if (auto outer = enclosing(store, execution)) producers.push_back(std::move(*outer));
  }
  return node;
}

}  // namespace

Ancestry Store::ancestry(std::int64_t artifact, int depth) const {
  auto a = this->artifact(artifact);
  if (!a) throw input_error("artifact " + std::to_string(artifact) + ": not in " + path().string());
  std::set<std::int64_t> seen;
  return walk(*this, *a, depth, seen);
}

}  // namespace cohort::lineage

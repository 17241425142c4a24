#include "nvbox/images/manifest.hpp"

#include "nvbox/error.hpp"
#include "nvbox/images/digest.hpp"

#include <ctime>
#include <nlohmann/json.hpp>
#include <set>

namespace nvbox::images {

using nlohmann::json;

namespace {

constexpr std::size_t kMaxTextField = 256;
constexpr const char *kManifestHint =
    "the image or bundle is damaged or was not made by nvbox; rebuild or export it again";

[[noreturn]] void fail(const std::string &source, const std::string &what) {
  throw Error("invalid manifest '" + source + "': " + what, kManifestHint);
}

bool hasControlChars(std::string_view text) {
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) {
      return true;
    }
  }
  return false;
}

// A value from the input made fit for an error message: shortened, and with
// control characters replaced so the message stays one line.
std::string clean(std::string_view text) {
  std::string out;
  for (const char c : text.substr(0, 80)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7F) ? '?' : c;
  }
  if (text.size() > 80) {
    out += "...";
  }
  return out;
}

std::string quote(std::string_view text) {
  // Appended rather than "'" + ...: GCC 12 at -O3 warns falsely (-Wrestrict) on
  // a literal prepended to a temporary string.
  std::string out = "'";
  out += clean(text);
  out += '\'';
  return out;
}

std::string typeName(const json &j) {
  if (j.is_number_unsigned()) {
    return "a non-negative integer";
  }
  if (j.is_number_integer()) {
    return "a negative integer";
  }
  if (j.is_number_float()) {
    return "a fractional number";
  }
  if (j.is_null()) {
    return "null";
  }
  const std::string type = j.type_name();
  return (type == "array" || type == "object" ? "an " : "a ") + type;
}

// Reads the fields of one JSON object, remembering which were used so that
// unknown fields can be refused.
class ObjectReader {
public:
  ObjectReader(const json &object, std::string path, const std::string &source)
      : object_(object), path_(std::move(path)), source_(source) {
    if (!object_.is_object()) {
      fail(source_, what("") + " must be an object, not " + typeName(object_));
    }
  }

  const json &field(const std::string &key) {
    const auto it = object_.find(key);
    if (it == object_.end()) {
      fail(source_, "missing field '" + join(key) + "'");
    }
    used_.insert(key);
    return *it;
  }

  std::string string(const std::string &key) {
    const json &v = field(key);
    if (!v.is_string()) {
      fail(source_, what(key) + " must be a string, not " + typeName(v));
    }
    return v.get<std::string>();
  }

  std::string text(const std::string &key) {
    std::string v = string(key);
    if (v.empty() || v.size() > kMaxTextField || hasControlChars(v)) {
      fail(source_,
           what(key) + " must be 1-256 characters without control characters, not " + quote(v));
    }
    return v;
  }

  std::string digest(const std::string &key) {
    std::string v = string(key);
    if (!isSha256Hex(v)) {
      fail(source_, what(key) + " must be 64 lowercase hex digits, not " + quote(v));
    }
    return v;
  }

  std::uint64_t size(const std::string &key) {
    const json &v = field(key);
    if (!v.is_number_unsigned()) {
      fail(source_, what(key) + " must be a non-negative integer, not " + typeName(v));
    }
    return v.get<std::uint64_t>();
  }

  // Refuses fields nobody asked for.
  void finish() const {
    for (const auto &[key, value] : object_.items()) {
      if (used_.count(key) == 0U) {
        fail(source_, "unknown field '" + join(key) + "'");
      }
    }
  }

  [[nodiscard]] std::string join(const std::string &key) const {
    return path_.empty() ? clean(key) : key.empty() ? path_ : path_ + "." + clean(key);
  }
  [[nodiscard]] std::string what(const std::string &key) const {
    return key.empty() && path_.empty() ? "the manifest" : "field '" + join(key) + "'";
  }

private:
  const json &object_;
  std::string path_;
  const std::string &source_;
  std::set<std::string> used_;
};

// Parses JSON text, refusing duplicate keys (nlohmann would keep the last).
json parseJson(std::string_view text, const std::string &source) {
  std::vector<std::set<std::string>> keys;
  const json::parser_callback_t refuseDuplicates = [&](int /*depth*/, json::parse_event_t event,
                                                       json &parsed) {
    if (event == json::parse_event_t::object_start) {
      keys.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      keys.pop_back();
    } else if (event == json::parse_event_t::key && !keys.empty()) {
      const auto &key = parsed.get_ref<const std::string &>();
      if (!keys.back().insert(key).second) {
        fail(source, "duplicate field " + quote(key));
      }
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), refuseDuplicates);
  } catch (const json::exception &e) {
    // "[json.exception.parse_error.101] parse error at line 1, ..." -> "parse error at ..."
    std::string msg = e.what();
    if (const auto close = msg.find("] "); msg.starts_with("[") && close != std::string::npos) {
      msg.erase(0, close + 2);
    }
    fail(source, "not valid JSON: " + msg);
  }
}

bool digits(std::string_view text, std::size_t pos, std::size_t count, int &value) {
  if (pos + count > text.size()) {
    return false;
  }
  value = 0;
  for (std::size_t i = pos; i < pos + count; ++i) {
    if (text[i] < '0' || text[i] > '9') {
      return false;
    }
    value = value * 10 + (text[i] - '0');
  }
  return true;
}

} // namespace

std::string_view toString(PartRole role) noexcept {
  switch (role) {
  case PartRole::Kernel:
    return "kernel";
  case PartRole::Initrd:
    return "initrd";
  case PartRole::Disk:
    return "disk";
  }
  return "unknown";
}

std::optional<PartRole> parsePartRole(std::string_view text) noexcept {
  for (const PartRole role : kAllRoles) {
    if (text == toString(role)) {
      return role;
    }
  }
  return std::nullopt;
}

std::string_view defaultFileName(PartRole role) noexcept {
  switch (role) {
  case PartRole::Kernel:
    return "vmlinuz";
  case PartRole::Initrd:
    return "initrd";
  case PartRole::Disk:
    return "root.qcow2";
  }
  return "unknown";
}

bool isValidImageName(std::string_view name) noexcept {
  if (name.empty() || name.size() > 64) {
    return false;
  }
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-'))) {
      return false;
    }
  }
  return true;
}

void checkImageName(std::string_view name) {
  if (!isValidImageName(name)) {
    throw UsageError("invalid image name " + quote(name),
                     "an image name is 1-64 characters of a-z 0-9 . _ -, starting with a "
                     "letter or digit");
  }
}

bool isValidPartFileName(std::string_view file) noexcept {
  if (file.empty() || file.size() > 128 || file.front() == '.' || file == Manifest::kFileName) {
    return false;
  }
  for (const char c : file) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-' || c == '+';
    if (!ok) {
      return false;
    }
  }
  return true;
}

bool isRfc3339(std::string_view t) noexcept {
  int year = 0;
  int month = 0;
  int day = 0;
  int hour = 0;
  int minute = 0;
  int second = 0;
  if (!digits(t, 0, 4, year) || t.size() < 20 || t[4] != '-' || !digits(t, 5, 2, month) ||
      t[7] != '-' || !digits(t, 8, 2, day) || (t[10] != 'T' && t[10] != 't') ||
      !digits(t, 11, 2, hour) || t[13] != ':' || !digits(t, 14, 2, minute) || t[16] != ':' ||
      !digits(t, 17, 2, second)) {
    return false;
  }
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (month < 1 || month > 12) {
    return false;
  }
  const int maxDay = kDays[month - 1] + ((month == 2 && leap) ? 1 : 0);
  if (day < 1 || day > maxDay || hour > 23 || minute > 59 || second > 60) {
    return false;
  }
  std::size_t pos = 19;
  if (t[pos] == '.') {
    const std::size_t start = ++pos;
    while (pos < t.size() && t[pos] >= '0' && t[pos] <= '9') {
      ++pos;
    }
    if (pos == start) {
      return false;
    }
  }
  if (pos >= t.size()) {
    return false;
  }
  if (t[pos] == 'Z' || t[pos] == 'z') {
    return pos + 1 == t.size();
  }
  int offHour = 0;
  int offMinute = 0;
  return (t[pos] == '+' || t[pos] == '-') && pos + 6 == t.size() &&
         digits(t, pos + 1, 2, offHour) && t[pos + 3] == ':' && digits(t, pos + 4, 2, offMinute) &&
         offHour <= 23 && offMinute <= 59;
}

std::string formatRfc3339(std::chrono::system_clock::time_point when) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(when);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return std::string(buf, n);
}

std::string computeInputDigest(const std::map<std::string, std::string> &inputs) {
  Sha256 h;
  for (const auto &[name, digest] : inputs) {
    h.update(digest);
    h.update("  ");
    h.update(name);
    h.update("\n");
  }
  return h.hex();
}

Manifest Manifest::parse(std::string_view text, const std::string &source) {
  const json doc = parseJson(text, source);
  ObjectReader top(doc, "", source);

  // The version first: a newer manifest may have fields this nvbox does not know.
  const json &version = top.field("format_version");
  if (!version.is_number_unsigned()) {
    fail(source, "field 'format_version' must be a non-negative integer, not " + typeName(version));
  }
  if (version.get<std::uint64_t>() != static_cast<std::uint64_t>(kFormatVersion)) {
    throw Error("manifest '" + source + "' has format version " + version.dump() +
                    ", this nvbox reads version " + std::to_string(kFormatVersion),
                "use the nvbox version that made the image, or rebuild it");
  }

  Manifest m;
  m.formatVersion = kFormatVersion;
  m.name = top.string("name");
  m.kernelVersion = top.text("kernel_version");
  m.osrdVersion = top.text("osrd_version");
  m.buildDate = top.string("build_date");
  m.inputDigest = top.digest("input_digest");

  const json &inputs = top.field("build_inputs");
  ObjectReader inputReader(inputs, "build_inputs", source);
  for (const auto &[key, value] : inputs.items()) {
    m.buildInputs.emplace(key, inputReader.digest(key));
  }
  inputReader.finish();

  const json &parts = top.field("parts");
  if (!parts.is_array()) {
    fail(source, "field 'parts' must be an array, not " + typeName(parts));
  }
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const std::string path = "parts[" + std::to_string(i) + "]";
    ObjectReader pr(parts[i], path, source);
    Part p;
    const std::string role = pr.string("role");
    const auto parsedRole = parsePartRole(role);
    if (!parsedRole) {
      fail(source, "field '" + path + ".role' must be kernel, initrd or disk, not " + quote(role));
    }
    p.role = *parsedRole;
    p.file = pr.string("file");
    p.sha256 = pr.digest("sha256");
    p.rawSize = pr.size("raw_size");
    p.storedSize = pr.size("stored_size");
    pr.finish();
    m.parts.push_back(std::move(p));
  }
  top.finish();
  m.validate(source);
  return m;
}

void Manifest::validate(const std::string &source) const {
  if (formatVersion != kFormatVersion) {
    fail(source, "field 'format_version' must be " + std::to_string(kFormatVersion));
  }
  if (!isValidImageName(name)) {
    fail(source, "field 'name' must be an image name (1-64 of a-z 0-9 . _ -, starting with a "
                 "letter or digit), not " +
                     quote(name));
  }
  for (const auto &[field, value] :
       {std::pair{"kernel_version", &kernelVersion}, std::pair{"osrd_version", &osrdVersion}}) {
    if (value->empty() || value->size() > kMaxTextField || hasControlChars(*value)) {
      fail(source, std::string("field '") + field +
                       "' must be 1-256 characters without control characters, not " +
                       quote(*value));
    }
  }
  if (!isRfc3339(buildDate)) {
    fail(source, "field 'build_date' must be an RFC 3339 date-time like "
                 "'2024-11-25T17:59:00Z', not " +
                     quote(buildDate));
  }
  for (const auto &[input, digest] : buildInputs) {
    if (input.empty() || input.size() > kMaxTextField || hasControlChars(input)) {
      fail(source, "build input name " + quote(input) +
                       " must be 1-256 characters without control characters");
    }
    if (!isSha256Hex(digest)) {
      fail(source, "field 'build_inputs." + clean(input) +
                       "' must be 64 lowercase hex digits, not " + quote(digest));
    }
  }
  if (!isSha256Hex(inputDigest)) {
    fail(source, "field 'input_digest' must be 64 lowercase hex digits, not " + quote(inputDigest));
  }
  if (computeInputDigest(buildInputs) != inputDigest) {
    fail(source, "field 'input_digest' " + quote(inputDigest) +
                     " is not the digest of 'build_inputs' (" + computeInputDigest(buildInputs) +
                     ")");
  }
  std::set<PartRole> roles;
  std::set<std::string> files;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const Part &p = parts[i];
    const std::string path = "parts[" + std::to_string(i) + "]";
    if (!roles.insert(p.role).second) {
      fail(source,
           "field '" + path + ".role': a second '" + std::string(toString(p.role)) + "' part");
    }
    if (!isValidPartFileName(p.file)) {
      fail(source, "field '" + path +
                       ".file' must be a plain file name (1-128 of A-Z a-z 0-9 . _ "
                       "+ -, not starting with '.', not 'manifest.json'), not " +
                       quote(p.file));
    }
    if (!files.insert(p.file).second) {
      fail(source, "field '" + path + ".file': " + quote(p.file) + " is used by two parts");
    }
    if (!isSha256Hex(p.sha256)) {
      fail(source,
           "field '" + path + ".sha256' must be 64 lowercase hex digits, not " + quote(p.sha256));
    }
  }
  for (const PartRole role : kAllRoles) {
    if (roles.count(role) == 0U) {
      fail(source, "field 'parts' has no '" + std::string(toString(role)) + "' part");
    }
  }
}

json Manifest::toJson() const {
  json partList = json::array();
  for (const Part &p : parts) {
    partList.push_back({{"role", std::string(toString(p.role))},
                        {"file", p.file},
                        {"sha256", p.sha256},
                        {"raw_size", p.rawSize},
                        {"stored_size", p.storedSize}});
  }
  json inputs = json::object();
  for (const auto &[key, value] : buildInputs) {
    inputs[key] = value;
  }
  return {{"format_version", formatVersion}, {"name", name},
          {"kernel_version", kernelVersion}, {"osrd_version", osrdVersion},
          {"build_date", buildDate},         {"build_inputs", inputs},
          {"input_digest", inputDigest},     {"parts", partList}};
}

std::string Manifest::dump() const {
  return toJson().dump(2) + "\n";
}

const Part *Manifest::part(PartRole role) const noexcept {
  for (const Part &p : parts) {
    if (p.role == role) {
      return &p;
    }
  }
  return nullptr;
}

const Part *Manifest::partByFile(std::string_view file) const noexcept {
  for (const Part &p : parts) {
    if (p.file == file) {
      return &p;
    }
  }
  return nullptr;
}

std::uint64_t Manifest::storedSize() const noexcept {
  std::uint64_t total = 0;
  for (const Part &p : parts) {
    total += p.storedSize;
  }
  return total;
}

std::uint64_t Manifest::rawSize() const noexcept {
  std::uint64_t total = 0;
  for (const Part &p : parts) {
    total += p.rawSize;
  }
  return total;
}

} // namespace nvbox::images

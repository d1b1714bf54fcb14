// GgufValue: type names, checked conversions and the short rendering used by `slm info`.
#include <charconv>
#include <cstdio>
#include <limits>

#include "core/error.h"
#include "io/gguf.h"

namespace slm {

std::string_view gguf_type_name(GgufType t) {
  switch (t) {
    case GgufType::UINT8: return "uint8";
    case GgufType::INT8: return "int8";
    case GgufType::UINT16: return "uint16";
    case GgufType::INT16: return "int16";
    case GgufType::UINT32: return "uint32";
    case GgufType::INT32: return "int32";
    case GgufType::FLOAT32: return "float32";
    case GgufType::BOOL: return "bool";
    case GgufType::STRING: return "string";
    case GgufType::ARRAY: return "array";
    case GgufType::UINT64: return "uint64";
    case GgufType::INT64: return "int64";
    case GgufType::FLOAT64: return "float64";
  }
  return "unknown";
}

namespace {

bool is_unsigned(GgufType t) {
  return t == GgufType::UINT8 || t == GgufType::UINT16 || t == GgufType::UINT32 ||
         t == GgufType::UINT64;
}
bool is_signed(GgufType t) {
  return t == GgufType::INT8 || t == GgufType::INT16 || t == GgufType::INT32 ||
         t == GgufType::INT64;
}
bool is_float(GgufType t) { return t == GgufType::FLOAT32 || t == GgufType::FLOAT64; }

std::string format_double(double v, bool single) {
  char buf[64];
  // Shortest text that reads back to the same value, at the precision it was stored in.
  auto r = single ? std::to_chars(buf, buf + sizeof buf, static_cast<float>(v))
                  : std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

}  // namespace

bool GgufValue::is_integer() const { return is_unsigned(type) || is_signed(type); }

std::string GgufValue::type_string() const {
  if (type != GgufType::ARRAY) return std::string(gguf_type_name(type));
  return "array of " + std::string(gguf_type_name(item_type));
}

int64_t GgufValue::as_int(std::string_view what) const {
  if (is_signed(type)) return i;
  if (is_unsigned(type)) {
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      throw Error(std::string(what) + ": value " + std::to_string(u) +
                  " does not fit in a signed 64-bit integer");
    return static_cast<int64_t>(u);
  }
  throw Error(std::string(what) + ": expected an integer, got " + type_string());
}

double GgufValue::as_double(std::string_view what) const {
  if (is_float(type)) return f;
  if (is_signed(type)) return static_cast<double>(i);
  if (is_unsigned(type)) return static_cast<double>(u);
  throw Error(std::string(what) + ": expected a number, got " + type_string());
}

std::string GgufValue::to_string(size_t max_items) const {
  if (is_signed(type)) return std::to_string(i);
  if (is_unsigned(type)) return std::to_string(u);
  switch (type) {
    case GgufType::FLOAT32: return format_double(f, true);
    case GgufType::FLOAT64: return format_double(f, false);
    case GgufType::BOOL: return u != 0 ? "true" : "false";
    case GgufType::STRING: return quote(s);
    case GgufType::ARRAY: {
      std::string out = "[";
      size_t shown = items.size() <= max_items ? items.size() : max_items;
      for (size_t k = 0; k < shown; ++k) {
        if (k > 0) out += ", ";
        out += items[k].to_string(max_items);
      }
      if (shown < items.size())
        out += (shown > 0 ? ", ... (" : "... (") + std::to_string(items.size()) + " items)";
      return out + "]";
    }
    default: return "?";
  }
}

GgufValue GgufValue::of_uint(GgufType t, uint64_t v) {
  if (!is_unsigned(t) && t != GgufType::BOOL)
    throw Error("GgufValue::of_uint: " + std::string(gguf_type_name(t)) + " is not unsigned");
  GgufValue out;
  out.type = t;
  out.u = v;
  return out;
}

GgufValue GgufValue::of_int(GgufType t, int64_t v) {
  if (!is_signed(t))
    throw Error("GgufValue::of_int: " + std::string(gguf_type_name(t)) + " is not signed");
  GgufValue out;
  out.type = t;
  out.i = v;
  return out;
}

GgufValue GgufValue::of_float(GgufType t, double v) {
  if (!is_float(t))
    throw Error("GgufValue::of_float: " + std::string(gguf_type_name(t)) + " is not a float");
  GgufValue out;
  out.type = t;
  out.f = t == GgufType::FLOAT32 ? static_cast<double>(static_cast<float>(v)) : v;
  return out;
}

GgufValue GgufValue::of_bool(bool v) {
  GgufValue out;
  out.type = GgufType::BOOL;
  out.u = v ? 1 : 0;
  return out;
}

GgufValue GgufValue::of_string(std::string v) {
  GgufValue out;
  out.type = GgufType::STRING;
  out.s = std::move(v);
  return out;
}

GgufValue GgufValue::of_array(GgufType item_type, std::vector<GgufValue> items) {
  GgufValue out;
  out.type = GgufType::ARRAY;
  out.item_type = item_type;
  out.items = std::move(items);
  return out;
}

}  // namespace slm

"""The tessera assembler: text or Python in, code words and a data image out.

One statement per line; mnemonics, registers and counter names in any case::

    ; a comment (or # a comment)
    .equ  N, 16             ; a constant, usable wherever a number is
    loop: addi r1, r1, -1   ; a label names the next instruction; registers r0..r15
          ld   r2, 8(r3)    ; LOAD rd, offset(base); ST rs, offset(base)
          bne  r1, r0, loop ; a target is a label or @N (instruction index N)
          dmem d0, r2, r3, 1          ; descriptor registers d0..d7
          dmem d1, r2, r3, 2, fp16    ; an element type: fp16, bf16 (dfin, dfout: fp32 too)
          vqnt d0, d1, shift=7, wide, async, slot=1
          vadd d0, d1, r5   ; a register as the last source sets VFlag.SCALAR
          vmac d2, d1, d3, float      ; floating point (VFlag.FLOAT)
          vsum r1, d2, float
          send r2, 3, ctrl
          csrr r1, cycles   ; a counter by its rtl.isa.Counter name, or a number
          li   r1, table+4  ; pseudo: addi, or lui + addi; numbers may add and subtract
          .inst 0x04000000  ; a raw word
    .data 0x100             ; data SRAM from byte address 0x100
    table: .byte 1, -2, 255 ; a label in .data is its byte address
          .word 0xdeadbeef  ; 32-bit little-endian
          .zero 12
    .code                   ; back to instructions

Each format takes the operands its comment in :class:`rtl.isa.Format` shows;
opcodes, fields and flags all come from :mod:`rtl.isa`.  The text assembler
is a parser in front of :class:`Builder`, which does all of the encoding, and
:func:`disassemble` checks every word it writes by encoding it again.

The builder also checks each vector instruction's operand types
(:func:`rtl.isa.accepts`) against its descriptor registers as the last
``dmem``, ``dacc``, ``dfin`` or ``dfout`` before it in the program set them: a
mismatch is an error that names the line.  (The core checks again when it
runs, since a branch may set a descriptor otherwise.)
"""

import inspect
import keyword
import re
from dataclasses import dataclass, field

from amaranth.hdl import Shape

from rtl.isa import (COUNTERS, DESCRIPTORS, IMM_BITS, INSTRUCTION, OPS, REGISTERS,
                     SEND_CTRL, SLOTS, STRIDE_BITS, TASKS, UNARY, Counter, Dtype, Format, Kind, Op,
                     Role, VFlag, accepts, decode, descriptor_imm, encode, is_float_op,
                     sign_extend, split_descriptor_imm)
from rtl.params import Params

__all__ = ["AsmError", "Program", "Builder", "assemble", "disassemble", "STRIDE_RANGE"]

_IMM = (-(1 << IMM_BITS - 1), (1 << IMM_BITS - 1) - 1)      # signed immediates
_UIMM_MASK = (1 << IMM_BITS) - 1
_LUI_BITS = IMM_BITS + Shape.cast(INSTRUCTION["c"].shape).width  # LUI: {c, imm}
_SHIFT_OPS = (Op.SLLI, Op.SRLI, Op.SRAI)                     # use 5 bits of the immediate
#: A descriptor's stride, in bytes: the range its field holds.
STRIDE_RANGE = (-(1 << STRIDE_BITS - 1), (1 << STRIDE_BITS - 1) - 1)
_INTEGER_ONLY = (Op.VQNT, Op.VTBL)                              # no floating-point form
_SHIFT_LSB = int(VFlag.SHIFT) & -int(VFlag.SHIFT)         # where the shift field starts
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class AsmError(ValueError):
    """Malformed or unfitting assembly; ``line`` is the 1-based source line, or None."""

    def __init__(self, message, line=None):
        super().__init__(message)
        self.message, self.line = message, line

    def __str__(self):
        return self.message if self.line is None else f"line {self.line}: {self.message}"


@dataclass
class Program:
    """Assembled code words, data segments (byte address -> bytes) and label values."""
    code: list
    data: dict = field(default_factory=dict)
    labels: dict = field(default_factory=dict)

    def words(self):
        return list(self.code)

    def data_image(self, params):
        """The whole data SRAM with the segments in place, zero elsewhere."""
        image = bytearray(params.data_bytes)
        for address, segment in self.data.items():
            _check_data_fits(params, address, len(segment))
            image[address:address + len(segment)] = segment
        return image


def _check_data_fits(params, address, size, line=None):
    if address < 0 or address + size > params.data_bytes:
        raise AsmError(f"data at {address:#x}..{address + size - 1:#x} is outside the data SRAM "
                       f"(0x0..{params.data_bytes - 1:#x}, {params.data_bytes} bytes)", line)


@dataclass
class _Instruction:
    line: int
    op: Op                   # None: a raw word, in imm
    a: int = 0
    b: int = 0
    c: int = 0
    imm: int = 0
    target: object = None    # a label name or an absolute index, resolved by build()
    relative: bool = False   # imm = target - pc, else imm = target


class Builder:
    """Emits a program from Python; the text assembler drives one too.

    One method per mnemonic (``and_`` and ``or_`` for the Python keywords), with
    the operands in the order of the text syntax, except that loads and stores
    take ``(reg, base, offset=0)``.  Registers, descriptors, colors, tasks and
    slots are ints; targets are label names or absolute instruction indices.
    ``line`` is the source line that errors name (set by the text assembler).
    """

    def __init__(self, params):
        self.params = params
        self.line = None
        self._code = []
        self._labels = {}            # name -> (value, is_code, line)
        self._data = []              # (address, bytes, line)
        self._descriptors = {}       # register -> (kind, dtype, line) as last set

    # -- what is not an instruction

    def label(self, name, address=None):
        """Name the next instruction or, with ``address``, a byte address of data SRAM."""
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise self._error(f"bad label name {name!r}")
        if name in self._labels:
            first = self._labels[name][2]
            raise self._error(f"duplicate label '{name}'"
                              + (f" (first on line {first})" if first else ""))
        code = address is None
        self._labels[name] = (len(self._code) if code else address, code, self.line)

    def data(self, address, content):
        """Place bytes in data SRAM at a byte address."""
        content = bytes(content)
        self._range(address, 0, self.params.data_bytes, "data address")
        _check_data_fits(self.params, address, len(content), self.line)
        if content:
            self._data.append((address, content, self.line))

    def inst(self, word):
        """Emit a raw instruction word."""
        word = self._range(word, 0, 2**32 - 1, "word")
        self._code.append(_Instruction(self.line, None, imm=word))

    def li(self, rd, value):
        """Load any 32-bit value: ``addi`` if it fits in the immediate, else ``lui`` + ``addi``."""
        value = self._range(value, -2**31, 2**32 - 1, "value") & 0xFFFFFFFF
        if _IMM[0] <= sign_extend(value, 32) <= _IMM[1]:
            return self.addi(rd, 0, sign_extend(value, 32))
        low = sign_extend(value, IMM_BITS)      # addi adds it sign-extended: lui takes the carry
        self.lui(rd, (value - low) >> IMM_BITS & ((1 << _LUI_BITS) - 1))
        self.addi(rd, rd, low)

    def build(self):
        """Resolve the targets and lay out the data: the :class:`Program`."""
        size, room = len(self._code), self.params.code_words
        if size > room:
            raise AsmError(f"program is {size} instructions ({4 * size} bytes); "
                           f"the code memory holds {room} ({4 * room} bytes)")
        code = [self._word(instruction, pc) for pc, instruction in enumerate(self._code)]
        data, end, end_line = {}, None, None
        for address, content, line in sorted(self._data, key=lambda chunk: chunk[0]):
            if end is not None and address < end:
                raise AsmError(f"data at {address:#x} overlaps the data up to {end - 1:#x}"
                               + (f" from line {end_line}" if end_line else ""), line)
            if end == address:
                start = max(data)
                data[start] += content
            else:
                data[address] = content
            end, end_line = address + len(content), line
        return Program(code, data, {name: value for name, (value, _, _) in self._labels.items()})

    # -- checks and encoding

    def _error(self, message):
        return AsmError(message, self.line)

    def _range(self, value, low, high, what):
        if not isinstance(value, int):
            raise self._error(f"{what} must be an integer, not {value!r}")
        if not low <= value <= high:
            raise self._error(f"{what} {value} out of range {low}..{high}")
        return int(value)

    def _reg(self, value):
        return self._range(value, 0, REGISTERS - 1, "register")

    def _desc(self, value):
        return self._range(value, 0, DESCRIPTORS - 1, "descriptor register")

    def _color(self, value):
        return self._range(value, 0, self.params.colors - 1, "color")

    def _task_number(self, value):
        return self._range(value, 0, TASKS - 1, "task")

    def _emit(self, op, a=0, b=0, c=0, imm=0, target=None, relative=False):
        if target is not None and not isinstance(target, (str, int)):
            raise self._error(f"a target is a label name or an instruction index, not {target!r}")
        self._code.append(_Instruction(self.line, op, a, b, c, imm, target, relative))

    def _word(self, instruction, pc):
        if instruction.op is None:
            return instruction.imm
        imm = instruction.imm
        if instruction.target is not None:
            imm = self._resolve(instruction)
            if instruction.relative:
                imm -= pc
                if not _IMM[0] <= imm <= _IMM[1]:
                    raise AsmError(f"target is {imm} instructions away; a branch reaches "
                                   f"{_IMM[0]}..{_IMM[1]}", instruction.line)
        return encode(instruction.op, instruction.a, instruction.b, instruction.c, imm)

    def _resolve(self, instruction):
        target, line = instruction.target, instruction.line
        if isinstance(target, str):
            if target not in self._labels:
                raise AsmError(f"unknown label '{target}'", line)
            index, code, _ = self._labels[target]
            if not code:
                raise AsmError(f"'{target}' is a data label, not an instruction", line)
        else:
            index = target
        if not 0 <= index < self.params.code_words:
            raise AsmError(f"target {index} is outside the code memory "
                           f"(0..{self.params.code_words - 1})", line)
        return index

    # -- the operands of each format (the methods per mnemonic call these)

    def _none(self, op):
        self._emit(op)

    def _r(self, op, rd, rs1, rs2):
        self._emit(op, a=self._reg(rd), b=self._reg(rs1), c=self._reg(rs2))

    def _i(self, op, rd, rs1, imm):
        low, high = (0, 31) if op in _SHIFT_OPS else _IMM
        self._emit(op, a=self._reg(rd), b=self._reg(rs1),
                   imm=self._range(imm, low, high, "immediate"))

    def _u(self, op, rd, imm):
        imm = self._range(imm, 0, (1 << _LUI_BITS) - 1, "immediate")
        self._emit(op, a=self._reg(rd), c=imm >> IMM_BITS, imm=imm & _UIMM_MASK)

    def _load(self, op, rd, base, offset=0):
        self._emit(op, a=self._reg(rd), b=self._reg(base), imm=self._range(offset, *_IMM, "offset"))

    def _store(self, op, rs, base, offset=0):
        self._emit(op, c=self._reg(rs), b=self._reg(base), imm=self._range(offset, *_IMM, "offset"))

    def _branch(self, op, rs1, rs2, target):
        self._emit(op, b=self._reg(rs1), c=self._reg(rs2), target=target, relative=True)

    def _loop(self, op, r, target):
        self._emit(op, a=self._reg(r), target=target, relative=True)

    def _jump(self, op, rd, target):
        self._emit(op, a=self._reg(rd), target=target)

    def _jr(self, op, rs):
        self._emit(op, b=self._reg(rs))

    def _csr(self, op, rd, counter):
        if isinstance(counter, str):
            if counter.upper() not in Counter.__members__:
                raise self._error(f"unknown counter '{counter}' "
                                  f"(counters: {', '.join(c.name.lower() for c in Counter)})")
            counter = Counter[counter.upper()]
        self._emit(op, a=self._reg(rd), imm=self._range(counter, 0, COUNTERS - 1, "counter"))

    def _recv(self, op, rd, color):
        self._emit(op, a=self._reg(rd), imm=self._color(color))

    def _send(self, op, rs, color, ctrl=False):
        self._emit(op, c=self._reg(rs), imm=self._color(color) | (SEND_CTRL if ctrl else 0))

    def _task(self, op, task, entry):
        self._emit(op, a=self._task_number(task), target=entry)

    def _tbind(self, op, task, color):
        self._emit(op, a=self._task_number(task), imm=self._color(color))

    def _t(self, op, task):
        self._emit(op, a=self._task_number(task))

    def _slot(self, op, slot):
        self._emit(op, a=self._range(slot, 0, SLOTS - 1, "slot"))

    def _dtype(self, dtype, kind):
        if not isinstance(dtype, Dtype):
            raise self._error(f"an element type is an rtl.isa.Dtype, not {dtype!r}")
        if kind == Kind.MEM and dtype == Dtype.FP32:
            raise self._error("a MEM descriptor holds int8, fp16 or bf16 elements, not fp32")
        return dtype

    def _set_descriptor(self, op, d, kind, dtype, **fields):
        self._emit(op, a=self._desc(d), **fields)
        self._descriptors[d] = (kind, self._dtype(dtype, kind), self.line)

    def _dmem(self, op, d, base, length, stride, dtype=Dtype.INT):
        stride = self._range(stride, *STRIDE_RANGE, "stride")
        self._set_descriptor(op, d, Kind.MEM, dtype, b=self._reg(base), c=self._reg(length),
                             imm=descriptor_imm(stride, dtype))

    def _dacc(self, op, d, base, length):
        self._set_descriptor(op, d, Kind.ACC, Dtype.INT, b=self._reg(base), c=self._reg(length))

    def _dfab(self, op, d, length, color, dtype=Dtype.INT):
        kind = Kind.FIN if op == Op.DFIN else Kind.FOUT
        self._set_descriptor(op, d, kind, dtype, c=self._reg(length),
                             imm=descriptor_imm(self._color(color), dtype))

    def _check_types(self, op, flags, operands):
        """Refuse an operand whose descriptor, as last set above, has a type ``op`` does not
        take."""
        floating = is_float_op(op, flags)
        for role, d in operands:
            if d not in self._descriptors:
                continue
            kind, dtype, line = self._descriptors[d]
            if not accepts(op, flags, role, kind, dtype):
                what = "an ACC" if kind == Kind.ACC else f"{dtype.name.lower()} {kind.name}"
                raise self._error(
                    f"{op.name.lower()}{' float' if flags & VFlag.FLOAT else ''}: the "
                    f"{role.value} d{d} is {what} (set" + (f" on line {line}" if line else "")
                    + f"), which a{' floating-point' if floating else 'n integer'} "
                    f"{op.name.lower()} does not take")

    def _v(self, op, dd, ds0, ds1=None, *, scalar=False, shift=0, wide=False, float_=False,
           async_=False, slot=0):
        name = op.name.lower()
        if (op in UNARY) != (ds1 is None):
            raise self._error(f"{name} takes {2 if op in UNARY else 3} operands")
        c = 0 if ds1 is None else self._reg(ds1) if scalar else self._desc(ds1)
        if scalar and ds1 is None:
            raise self._error(f"{name} has no scalar operand")
        if float_ and op in _INTEGER_ONLY:
            raise self._error(f"{name} has no floating-point form")
        flags = (self._range(shift, 0, VFlag.SHIFT // _SHIFT_LSB, "shift") * _SHIFT_LSB
                 | (VFlag.WIDE if wide else 0) | (VFlag.SCALAR if scalar else 0)
                 | (VFlag.FLOAT if float_ else 0) | (VFlag.ASYNC if async_ else 0)
                 | (VFlag.SLOT1 if self._range(slot, 0, SLOTS - 1, "slot") else 0))
        operands = [(Role.DST, self._desc(dd)), (Role.SRC, self._desc(ds0))]
        if ds1 is not None and not scalar:
            operands.append((Role.SRC2, c))
        self._check_types(op, flags, operands)
        self._emit(op, a=self._desc(dd), b=self._desc(ds0), c=c, imm=int(flags))

    def _vred(self, op, rd, ds, *, float_=False):
        flags = VFlag.FLOAT if float_ else VFlag(0)
        self._check_types(op, flags, [(Role.SRC, self._desc(ds))])
        self._emit(op, a=self._reg(rd), b=self._desc(ds), imm=int(flags))


def _method_name(op):
    name = op.name.lower()
    return name + "_" if keyword.iskeyword(name) else name


def _instruction_method(op):
    encoder = getattr(Builder, "_" + OPS[op].format.name.lower())

    def method(self, *operands, **flags):
        encoder(self, op, *operands, **flags)
    parameters = list(inspect.signature(encoder).parameters.values())
    method.__signature__ = inspect.Signature([parameters[0], *parameters[2:]])
    method.__name__ = method.__qualname__ = _method_name(op)
    method.__doc__ = f"Emit {op.name} (format {OPS[op].format.name})."
    return method


for _op in Op:
    setattr(Builder, _method_name(_op), _instruction_method(_op))


# -- text

# The operands of each format in the text syntax; "mem" is offset(base), two builder arguments.
_OPERANDS = {
    Format.NONE: (), Format.R: ("reg", "reg", "reg"), Format.I: ("reg", "reg", "num"),
    Format.U: ("reg", "hex"), Format.LOAD: ("reg", "mem"), Format.STORE: ("reg", "mem"),
    Format.BRANCH: ("reg", "reg", "target"), Format.LOOP: ("reg", "target"),
    Format.JUMP: ("reg", "target"), Format.JR: ("reg",), Format.CSR: ("reg", "counter"),
    Format.RECV: ("reg", "num"), Format.SEND: ("reg", "num"), Format.TASK: ("num", "target"),
    Format.TBIND: ("num", "num"), Format.T: ("num",), Format.SLOT: ("num",),
    Format.DMEM: ("desc", "reg", "reg", "num"), Format.DACC: ("desc", "reg", "reg"),
    Format.DFAB: ("desc", "reg", "num"), Format.V: ("desc", "desc", "source"),
    Format.VRED: ("reg", "desc"),
}
# Optional flags after the operands, in their canonical order: name -> takes a number.
_FLAGS = {Format.SEND: {"ctrl": False},
          Format.V: {"shift": True, "wide": False, "float": False, "async": False, "slot": True},
          Format.VRED: {"float": False},
          Format.DMEM: {"fp16": False, "bf16": False},
          Format.DFAB: {"fp16": False, "bf16": False, "fp32": False}}
#: The flags that name an element type (the builder's ``dtype``).
_DTYPE_FLAGS = {dtype.name.lower(): dtype for dtype in Dtype if dtype != Dtype.INT}
_KINDS = {"reg": "register", "desc": "descriptor", "num": "number", "hex": "number",
          "target": "label or @N", "counter": "counter", "mem": "offset(register)",
          "source": "descriptor or register"}
_DIRECTIVES = {".equ": 2, ".data": 1, ".code": 0, ".byte": None, ".word": None, ".zero": 1,
               ".inst": 1}                   # -> how many operands (None: one or more)
_MNEMONICS = {op.name.lower(): op for op in Op}


def _operand_kinds(op):
    kinds = _OPERANDS[OPS[op].format]
    return kinds[:2] if op in UNARY else kinds


class _Assembler:
    """Two passes over the statements: the first gives .equ constants and data labels
    their values (instructions may use them before their definition, and ``li``
    needs the value to know its length); the second feeds a :class:`Builder`."""

    def __init__(self, text, params):
        self.params = params
        self.statements = list(self._statements(text))
        self.symbols = {}            # .equ constants and data labels -> value
        self.code_labels = set()
        self.defined = {}            # name -> line of its definition
        self.builder = None
        self.line = None

    def run(self):
        self._pass()
        self.builder = Builder(self.params)
        self._pass()
        return self.builder.build()

    def _error(self, message):
        return AsmError(message, self.line)

    def _statements(self, text):
        for number, line in enumerate(text.splitlines(), 1):
            self.line = number
            line = re.split(r"[;#]", line, maxsplit=1)[0].strip()
            labels = []
            while (match := re.match(r"([^\s:,]+)\s*:", line)):
                if not _NAME.fullmatch(match[1]):
                    raise self._error(f"bad label name '{match[1]}'")
                labels.append(match[1])
                line = line[match.end():].strip()
            mnemonic, rest = (line.split(None, 1) + ["", ""])[:2]
            operands = [operand.strip() for operand in rest.split(",")] if rest.strip() else []
            if "" in operands:
                raise self._error("empty operand")
            yield number, labels, mnemonic.lower(), operands

    def _pass(self):
        first = self.builder is None
        section, address = "code", 0
        for self.line, labels, mnemonic, operands in self.statements:
            if not first:
                self.builder.line = self.line
            for name in labels:
                if first:
                    self._define(name, address if section == "data" else None)
                else:
                    self.builder.label(name, address if section == "data" else None)
            if not mnemonic:
                continue
            if mnemonic in _DIRECTIVES:
                self._check_count(mnemonic, operands)
            if mnemonic == ".equ":
                if first:
                    self._define(operands[0], self._number(operands[1]), equ=True)
            elif mnemonic == ".data":
                section, address = "data", self._number(operands[0])
                if not 0 <= address < self.params.data_bytes:
                    raise self._error(f".data address {address:#x} is outside the data SRAM "
                                      f"(0x0..{self.params.data_bytes - 1:#x})")
            elif mnemonic == ".code":
                section = "code"
            elif mnemonic in (".byte", ".word", ".zero"):
                if section != "data":
                    raise self._error(f"{mnemonic} outside a .data section")
                content = self._data(mnemonic, operands, address, first)
                if not first:
                    self.builder.data(address, content)
                address += len(content)
            elif section == "data":
                raise self._error(f"'{mnemonic}' in a .data section (.code switches back)")
            elif mnemonic == ".inst":
                if not first:
                    self.builder.inst(self._number(operands[0]))
            elif mnemonic.startswith("."):
                raise self._error(f"unknown directive '{mnemonic}' "
                                  f"(directives: {', '.join(_DIRECTIVES)})")
            elif not first:
                self._instruction(mnemonic, operands)

    def _check_count(self, directive, operands):
        count = _DIRECTIVES[directive]
        if len(operands) != count if count is not None else not operands:
            raise self._error(f"{directive} takes {'one or more' if count is None else count} "
                              f"operands, not {len(operands)}")

    def _define(self, name, value, equ=False):
        if not _NAME.fullmatch(name):
            raise self._error(f"bad {'constant' if equ else 'label'} name '{name}'")
        if name in self.defined:
            raise self._error(f"duplicate label '{name}' (first on line {self.defined[name]})")
        self.defined[name] = self.line
        if value is None:
            self.code_labels.add(name)
        else:
            self.symbols[name] = value

    def _data(self, mnemonic, operands, address, first):
        if mnemonic == ".zero":
            size = self._number(operands[0])
            if size < 0:
                raise self._error(f".zero takes a size of 0 or more bytes, not {size}")
            _check_data_fits(self.params, address, size, self.line)   # before allocating it
            return bytes(size)
        size, low, high = (1, -2**7, 2**8 - 1) if mnemonic == ".byte" else (4, -2**31, 2**32 - 1)
        if first:                    # sizes only: the values may use later symbols
            return bytes(size * len(operands))
        content = bytearray()
        for operand in operands:
            value = self._number(operand)
            if not low <= value <= high:
                raise self._error(f"{mnemonic} value {value} out of range {low}..{high}")
            content += (value & (1 << 8 * size) - 1).to_bytes(size, "little")
        return bytes(content)

    def _instruction(self, mnemonic, operands):
        if mnemonic == "li":
            op, kinds, method = None, ("reg", "num"), self.builder.li
        else:
            op = _MNEMONICS.get(mnemonic)
            if op is None:
                raise self._error(f"unknown instruction '{mnemonic}'")
            kinds, method = _operand_kinds(op), getattr(self.builder, _method_name(op))
        flags = _FLAGS.get(OPS[op].format, {}) if op is not None else {}
        if len(operands) < len(kinds) or (len(operands) > len(kinds) and not flags):
            usage = ", ".join(_KINDS[kind] for kind in kinds) or "no operands"
            raise self._error(f"'{mnemonic}' takes {len(kinds)} operands ({usage}"
                              + (", then flags" if flags else "") + f"), not {len(operands)}")
        arguments, keywords = [], {}
        for kind, operand in zip(kinds, operands):
            value = getattr(self, "_" + kind)(operand)
            if kind == "mem":
                arguments += value
            elif kind == "source":
                keywords["scalar"], value = value
                arguments.append(value)
            else:
                arguments.append(value)
        keywords.update(self._flags(mnemonic, operands[len(kinds):], flags))
        method(*arguments, **keywords)

    def _flags(self, mnemonic, operands, flags):
        given = {}
        usage = ", ".join(f"{name}=N" if number else name for name, number in flags.items())
        for operand in operands:
            name, equals, value = (part.strip() for part in operand.partition("="))
            name = name.lower()
            if name not in flags or flags[name] != bool(equals):
                raise self._error(f"bad flag '{operand}' ({mnemonic} takes {usage})")
            if name in given or name in _DTYPE_FLAGS and given.keys() & _DTYPE_FLAGS.keys():
                raise self._error(f"flag '{name}' given twice" if name in given
                                  else "more than one element type")
            given[name] = self._number(value) if equals else True
        return _builder_keywords(given)

    # -- operands

    def _register(self, text, prefix, count, what):
        match = re.fullmatch(prefix + r"(\d+)", text, re.IGNORECASE)
        if not match:
            raise self._error(f"expected a {what} ({prefix}0..{prefix}{count - 1}), not '{text}'")
        if int(match[1]) >= count:
            raise self._error(f"bad {what} '{text}' ({prefix}0..{prefix}{count - 1})")
        return int(match[1])

    def _reg(self, text):
        return self._register(text, "r", REGISTERS, "register")

    def _desc(self, text):
        return self._register(text, "d", DESCRIPTORS, "descriptor register")

    def _source(self, text):
        """A vector source: (is a scalar register, number)."""
        if re.fullmatch(r"r\d+", text, re.IGNORECASE):
            return True, self._reg(text)
        return False, self._register(text, "d", DESCRIPTORS, "descriptor or register")

    def _number(self, text):
        """A number, constant or data label, or a sum and difference of them."""
        terms = re.split(r"\s*([+-])\s*", text.strip())
        if terms[0] == "":                       # a leading sign
            terms[0] = "0"
        value, sign = 0, 1
        for index, term in enumerate(terms):
            if index % 2:
                sign = 1 if term == "+" else -1
            elif re.fullmatch(r"\d\w*", term):
                try:
                    value += sign * int(term, 0)
                except ValueError:
                    raise self._error(f"bad number '{text}'") from None
            elif term in self.symbols:
                value += sign * self.symbols[term]
            elif term in self.code_labels:
                raise self._error(f"'{term}' is a code label; only .equ constants and data labels "
                                  f"are numbers")
            elif _NAME.fullmatch(term):
                raise self._error(f"unknown symbol '{term}'" if self.builder else
                                  f"symbol '{term}' is not defined above this line")
            else:
                raise self._error(f"bad number '{text}'")
        return value

    _num = _hex = _number

    def _target(self, text):
        if text.startswith("@"):
            return self._number(text[1:])
        if not _NAME.fullmatch(text):
            raise self._error(f"bad target '{text}' (a label or @N)")
        return text

    def _counter(self, text):
        return text if _NAME.fullmatch(text) else self._number(text)

    def _mem(self, text):
        """``offset(base)``: (base, offset)."""
        match = re.fullmatch(r"(.*?)\s*\(\s*(\w+)\s*\)", text)
        if not match:
            raise self._error(f"expected offset(register), not '{text}'")
        return self._reg(match[2]), self._number(match[1]) if match[1] else 0


def _builder_keywords(flags):
    """The builder's keyword arguments for text flags ``{name: value}`` (the set ones)."""
    keywords = {}
    for name, value in flags.items():
        if name in _DTYPE_FLAGS:
            keywords["dtype"] = _DTYPE_FLAGS[name]
        else:
            keywords[name + "_" if keyword.iskeyword(name) or name == "float" else name] = value
    return keywords


def assemble(text, params):
    """Assemble source text for a core of ``params``; raises :class:`AsmError`."""
    return _Assembler(text, params).run()


# -- disassembly

# The builder arguments that give each format's fields (decode side); disassemble encodes
# them again, so a word the builder would not produce becomes .inst.
_ARGUMENTS = {
    Format.NONE: lambda a, b, c, imm, pc: (),
    Format.R: lambda a, b, c, imm, pc: (a, b, c),
    Format.I: lambda a, b, c, imm, pc: (a, b, imm),
    Format.U: lambda a, b, c, imm, pc: (a, c << IMM_BITS | imm),
    Format.LOAD: lambda a, b, c, imm, pc: (a, b, imm),
    Format.STORE: lambda a, b, c, imm, pc: (c, b, imm),
    Format.BRANCH: lambda a, b, c, imm, pc: (b, c, pc + imm),
    Format.LOOP: lambda a, b, c, imm, pc: (a, pc + imm),
    Format.JUMP: lambda a, b, c, imm, pc: (a, imm),
    Format.JR: lambda a, b, c, imm, pc: (b,),
    Format.CSR: lambda a, b, c, imm, pc: (a, imm),
    Format.RECV: lambda a, b, c, imm, pc: (a, imm),
    Format.SEND: lambda a, b, c, imm, pc: (c, imm & ~SEND_CTRL),
    Format.TASK: lambda a, b, c, imm, pc: (a, imm),
    Format.TBIND: lambda a, b, c, imm, pc: (a, imm),
    Format.T: lambda a, b, c, imm, pc: (a,),
    Format.SLOT: lambda a, b, c, imm, pc: (a,),
    Format.DMEM: lambda a, b, c, imm, pc: (a, b, c, sign_extend(imm, STRIDE_BITS)),
    Format.DACC: lambda a, b, c, imm, pc: (a, b, c),
    Format.DFAB: lambda a, b, c, imm, pc: (a, c, split_descriptor_imm(imm)[0]),
    Format.V: lambda a, b, c, imm, pc: (a, b, c),
    Format.VRED: lambda a, b, c, imm, pc: (a, b),
}

# Large enough for every word the ISA can encode: disassembly does not know the params.
_ANY_CORE = Params(colors=32, sram_bytes=1 << 17, code_bytes=1 << 16)


def _flags_of(op, imm):
    """The text flags of an instruction's immediate (V: and whether c is a register)."""
    fmt = OPS[op].format
    if fmt == Format.SEND:
        return {"ctrl": bool(imm & SEND_CTRL)}
    if fmt == Format.V:
        return {"shift": (imm & VFlag.SHIFT) // _SHIFT_LSB, "wide": bool(imm & VFlag.WIDE),
                "float": bool(imm & VFlag.FLOAT), "async": bool(imm & VFlag.ASYNC),
                "slot": int(bool(imm & VFlag.SLOT1)), "scalar": bool(imm & VFlag.SCALAR)}
    if fmt == Format.VRED:
        return {"float": bool(imm & VFlag.FLOAT)}
    if fmt in (Format.DMEM, Format.DFAB):
        dtype = split_descriptor_imm(imm)[1]
        return {name: dtype == flag_dtype for name, flag_dtype in _DTYPE_FLAGS.items()
                if name in _FLAGS[fmt]}
    return {}


def _understood(word, pc, check):
    """``(op, builder arguments, flags)`` if the builder ``check``, fed the words before this
    one that it understood, encodes exactly this word; else None."""
    opcode, a, b, c, imm = decode(word)
    try:
        op = Op(opcode)
    except ValueError:
        return None
    arguments = _ARGUMENTS[OPS[op].format](a, b, c, imm, pc)
    arguments = arguments[:2] if op in UNARY else arguments
    flags = _flags_of(op, imm)
    descriptors = dict(check._descriptors)
    try:
        getattr(check, _method_name(op))(
            *arguments, **_builder_keywords({name: value for name, value in flags.items()
                                             if name not in _DTYPE_FLAGS or value}))
        if check._word(check._code[-1], pc) != word:
            raise AsmError("encodes otherwise")
    except AsmError:
        check._descriptors = descriptors          # as if the word were not there
        return None
    return op, arguments, flags


def disassemble(words):
    """Source text that :func:`assemble` turns back into the same words (for the params
    they were assembled for): labels ``L<index>`` for targets, ``.inst`` for any word
    the assembler would not write."""
    check = Builder(_ANY_CORE)
    decoded = [_understood(word, pc, check) for pc, word in enumerate(words)]
    targets = set()
    for entry in decoded:
        if entry:
            op, arguments, _ = entry
            if "target" in _operand_kinds(op):
                targets.add(arguments[-1])

    def target(index):
        return f"L{index}" if index in targets and 0 <= index < len(words) else f"@{index}"

    lines = []
    for pc, (word, entry) in enumerate(zip(words, decoded)):
        if pc in targets:
            lines.append(f"L{pc}:")
        if entry is None:
            lines.append(f"    .inst {word:#010x}")
            continue
        op, arguments, flags = entry
        values, texts = list(arguments), []
        for kind in _operand_kinds(op):
            value = values.pop(0)
            texts.append({
                "reg": lambda: f"r{value}", "desc": lambda: f"d{value}", "num": lambda: str(value),
                "hex": lambda: f"{value:#x}", "target": lambda: target(value),
                "counter": lambda: Counter(value).name.lower(),
                "mem": lambda: f"{values.pop(0)}(r{value})",
                "source": lambda: f"{'r' if flags['scalar'] else 'd'}{value}"}[kind]())
        for name, number in _FLAGS.get(OPS[op].format, {}).items():
            if flags[name]:
                texts.append(f"{name}={flags[name]}" if number else name)
        lines.append(f"    {op.name.lower():8} {', '.join(texts)}".rstrip())
    return "\n".join(lines) + "\n"

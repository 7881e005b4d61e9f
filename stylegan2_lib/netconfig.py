"""Config dataclasses' shared plumbing: JSON round trip, channel tables, validation."""

import dataclasses

#----------------------------------------------------------------------------
# NVlabs channel formula: channels at resolution r = min(channel_base // r, channel_max).

def channel_table(resolutions, channel_base, channel_max):
    return {int(r): int(min(channel_base // r, channel_max)) for r in resolutions}

def check_resolution(res, what='img_resolution'):
    """log2(res) for a power of two in 4..1024, else ValueError."""
    if type(res) is not int or res < 4 or res > 1024 or res & (res - 1):
        raise ValueError(f'{what} must be a power of two in 4..1024, got {res!r:.40}')
    return res.bit_length() - 1

#----------------------------------------------------------------------------
# The resolutions of a network's blocks, and where its float16 blocks start (NVlabs: the num_fp16_res highest
# resolutions, never below 8). One definition for the networks, the loaders and the explorer.

def block_resolutions(img_resolution):
    """[4, 8, ..., img_resolution]: the synthesis blocks (D has the same, highest first, with 4 as its epilogue)."""
    return [2 ** i for i in range(2, check_resolution(img_resolution) + 1)]

def fp16_resolution(img_resolution, num_fp16_res):
    """Blocks at this resolution and above run in float16 (when asked, on CUDA)."""
    return max(2 ** (check_resolution(img_resolution) + 1 - num_fp16_res), 8)

#----------------------------------------------------------------------------
# JSON-friendly dict <-> dataclass. Channel tables have int keys, which JSON turns into strings.

def check_channels(channels, resolutions):
    missing = [r for r in resolutions if r not in channels]
    if missing:
        raise ValueError(f'channel table has no entry for resolutions {missing}')
    empty = [r for r in resolutions if channels[r] < 1]
    if empty:
        raise ValueError(f'channel table gives no channels at resolutions {empty}: raise channel_base or set channels')

class ConfigMixin:
    def to_dict(self):
        d = dataclasses.asdict(self)
        d['channels'] = {str(k): v for k, v in d['channels'].items()}
        if d.get('resample_filter') is not None:
            d['resample_filter'] = list(d['resample_filter'])
        return d

    @classmethod
    def from_dict(cls, d):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f'{cls.__name__}: unknown fields {unknown}')
        d = dict(d)
        if d.get('channels') is not None:
            d['channels'] = {int(k): int(v) for k, v in d['channels'].items()}
        if d.get('resample_filter') is not None:
            d['resample_filter'] = tuple(d['resample_filter'])
        return cls(**d)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

"""Config dataclasses' shared plumbing: JSON round trip, channel tables, validation."""

import dataclasses
import math

#----------------------------------------------------------------------------
# NVlabs channel formula: channels at resolution r = min(channel_base // r, channel_max).

def channel_table(resolutions, channel_base, channel_max):
    return {int(r): int(min(channel_base // r, channel_max)) for r in resolutions}

def check_resolution(res, what='img_resolution'):
    if not isinstance(res, int) or res < 4 or res > 1024 or 2 ** int(math.log2(res)) != res:
        raise ValueError(f'{what} must be a power of two in 4..1024, got {res!r}')
    return int(math.log2(res))

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

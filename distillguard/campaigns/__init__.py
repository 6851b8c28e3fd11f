"""Campaigns: flagged clusters as campaign records, attribution, ban evasion and enforcement."""

from distillguard.campaigns.attribution import attribute_orgs, ban_evasion_links
from distillguard.campaigns.build import build_campaigns
from distillguard.campaigns.enforcement import enforcement_rows

__all__ = ["attribute_orgs", "ban_evasion_links", "build_campaigns", "enforcement_rows"]

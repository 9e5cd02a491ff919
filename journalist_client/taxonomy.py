"""Triage vocabularies: statuses, the severity scale and the incident category codes.

Copied from ../shared/data/taxonomy.md (the coalition's draft taxonomy, written for this
project): the 13 top-level categories with their subtypes, and the S1..S5 helpline
urgency scale. A triager may set a top-level code or a ``category.subtype`` code.
"""

from __future__ import annotations

from typing import Final

__all__ = ["CATEGORIES", "CATEGORY_CODES", "SEVERITIES", "STATUSES"]

STATUSES: Final = ("new", "triaged", "in-progress", "referred", "closed")

SEVERITIES: Final = {
    "S1": "Critical / emergency",
    "S2": "High",
    "S3": "Medium",
    "S4": "Low",
    "S5": "Informational / preventive",
}

CATEGORIES: Final[dict[str, tuple[str, ...]]] = {
    "spyware": ("threat_notification", "exploit_link", "zero_click_suspected",
                "forensic_match", "physical_install", "stalkerware"),
    "msg": ("credential_phishing", "malicious_attachment", "pretext_approach",
            "smishing_vishing", "account_code_request"),
    "acct": ("takeover", "suspicious_activity", "messaging_hijack", "locked_out",
             "platform_suspension"),
    "device": ("symptoms_only", "commodity_malware", "malicious_app", "ransomware_wiper",
               "unexpected_config"),
    "seized": ("arrest_detention", "border_checkpoint", "raid", "returned",
               "coerced_unlock", "lost_stolen"),
    "harass": ("threats", "coordinated_campaign", "gendered_sexual", "sextortion_blackmail",
               "hate_speech", "cyberstalking"),
    "impersonation": ("fake_profile", "fake_site_domain", "forged_content", "smear_campaign"),
    "exposure": ("doxing", "hack_and_leak", "source_exposure", "provider_breach", "accidental"),
    "web": ("ddos", "defacement", "compromise", "domain_dns_hijack", "hosting_takedown"),
    "network": ("blocking", "shutdown_throttling", "interception", "telecom_abuse"),
    "legal": ("arrest_for_content", "data_demand", "content_removal",
              "travel_ban_surveillance"),
    "advice": ("device_checkup", "security_review", "travel_event_prep"),
    "other": ("undetermined", "out_of_scope"),
}

CATEGORY_CODES: Final = frozenset(
    [*CATEGORIES, *(f"{top}.{sub}" for top, subs in CATEGORIES.items() for sub in subs)]
)

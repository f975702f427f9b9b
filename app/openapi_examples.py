"""Worked examples shown in Swagger UI (seeds/000 Tables 2-3 name Kazakhstan and the UAE)."""

from __future__ import annotations

from typing import Any

MATCH_EXAMPLES: dict[str, dict[str, Any]] = {
    "kazakhstan_like": {
        "summary": "Kazakhstan-like chaser (medium R&D, medium public will)",
        "description": "seeds/000 Tables 2-3 list Kazakhstan for the hospital and research models. "
        "Which of the two comes first follows healthcare vs research capacity.",
        "value": {
            "profile": {
                "innovation_stage": "chaser",
                "rd_level": "medium",
                "government_investment_will": "medium",
                "healthcare_capacity": "high",
                "research_capacity": "medium",
            },
            "method": "hybrid",
        },
    },
    "uae_like": {
        "summary": "UAE-like chaser with strong public will",
        "description": "seeds/000 Table 3 lists the UAE for the composite (full-package) model.",
        "value": {
            "profile": {
                "innovation_stage": "chaser",
                "rd_level": "high",
                "government_investment_will": "high",
            },
            "method": "hybrid",
        },
    },
    "developing_country": {
        "summary": "Developing country, low R&D, strong public will (Vietnam-like)",
        "description": "seeds/000 Table 2: the production model is for developing countries (e.g. Southeast Asia).",
        "value": {
            "profile": {
                "innovation_stage": "developing",
                "rd_intensity_pct": 0.4,
                "government_investment_will": "high",
            },
            "method": "rules",
        },
    },
    "by_country_code": {
        "summary": "By country code, with one caller override",
        "description": "Reference data fill the profile; the caller's value wins where given.",
        "value": {"country": "KAZ", "profile": {"government_investment_will": "high"}, "method": "hybrid"},
    },
}

BATCH_EXAMPLE: dict[str, dict[str, Any]] = {
    "three_countries": {
        "summary": "Kazakhstan-like, UAE-like and a developing country in one call",
        "value": {
            "items": [
                MATCH_EXAMPLES[k]["value"] for k in ("kazakhstan_like", "uae_like", "developing_country")
            ]
        },
    }
}
